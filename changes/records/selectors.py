"""What the change pages and the API read: the changes a person may see, searched and filtered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from changes.records.models import ChangeRecord
from governance.authority.models import holds_everywhere
from governance.models import LedgerEntry, Service, User


@dataclass(frozen=True)
class ChangeFilters:
    q: str = ""
    state: str = ""
    type: str = ""
    risk: str = ""
    service: str = ""  # a slug


def changes_visible_to(user: User) -> QuerySet[ChangeRecord]:
    """Changes touching at least one service whose releases `user` may see (all for people who
    see every service: administrators, auditors, global roles)."""
    changes = ChangeRecord.objects.all()
    if user.is_authenticated and holds_everywhere(user, "view"):
        return changes
    visible = Service.objects.restrict(user, "view")
    return changes.filter(
        pk__in=ChangeRecord.services.through.objects.filter(service__in=visible).values(
            "changerecord_id"
        )
    )


def search_changes(changes: QuerySet[ChangeRecord], filters: ChangeFilters) -> QuerySet:
    if filters.q:
        changes = changes.filter(Q(ref__icontains=filters.q) | Q(title__icontains=filters.q))
    for name in ("state", "type", "risk"):
        value = getattr(filters, name)
        if value:
            changes = changes.filter(**{name: value})
    if filters.service:
        changes = changes.filter(services__slug=filters.service)
    return changes.select_related("author", "implementer").prefetch_related("services")


def change_history(change: ChangeRecord) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(subject=f"change:{change.pk}").order_by("seq"))


# The releases linked to a change live in the approvals app, above this one: it registers a
# function that lists them for a person (what they may see), gate included.
ReleaseLister = Callable[[ChangeRecord, User], list[dict]]
_release_listers: dict[str, ReleaseLister] = {}


def register_release_lister(name: str, lister: ReleaseLister) -> None:
    _release_listers[name] = lister


def linked_releases(change: ChangeRecord, user: User) -> list[dict]:
    rows: list[dict] = []
    for lister in _release_listers.values():
        rows.extend(lister(change, user))
    return rows

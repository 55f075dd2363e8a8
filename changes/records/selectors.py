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


# A change's page shows what is known above this concern: the releases linked to it (the
# approvals app lists them for a person, gate included) and the conflicts of its window (the
# change calendar finds them). Each registers its function from an AppConfig.ready().
ReleaseLister = Callable[[ChangeRecord, User], list[dict]]
ConflictFinder = Callable[[ChangeRecord], list]
_release_listers: dict[str, ReleaseLister] = {}
_conflict_finders: dict[str, ConflictFinder] = {}


def register_release_lister(name: str, lister: ReleaseLister) -> None:
    _release_listers[name] = lister


def register_conflict_finder(name: str, finder: ConflictFinder) -> None:
    _conflict_finders[name] = finder


def linked_releases(change: ChangeRecord, user: User) -> list[dict]:
    rows: list[dict] = []
    for lister in _release_listers.values():
        rows.extend(lister(change, user))
    return rows


def change_conflicts(change: ChangeRecord) -> list:
    """The conflicts of the change's planned window (`changes.calendar.conflicts.Conflict`)."""
    found: list = []
    for finder in _conflict_finders.values():
        found.extend(finder(change))
    return found

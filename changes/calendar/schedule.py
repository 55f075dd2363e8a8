"""Reads for the change schedule: who sees which services, every source's entries, and the
conflicts of what the calendar shows."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db.models import Q

from changes.calendar.conflicts import Conflict, ConflictBoard
from changes.calendar.entries import CalendarEntry, Status, registered_sources
from changes.calendar.sources import change_source, freeze_source
from governance.authority.selectors import is_auditor
from governance.models import Service, Team, User, holds_everywhere

# Kinds of entries whose window is checked for conflicts (a freeze is what others conflict with).
CHECKED_KINDS = ("change", "release", "vendor release")


def visible_service_ids(user: User) -> set[int] | None:
    """Services whose entries `user` may see; None for every service (administrators,
    auditors and anyone holding a role on everything)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    if holds_everywhere(user, "view") or is_auditor(user):
        return None
    return set(Service.objects.restrict(user, "view").values_list("pk", flat=True))


def feed_service_ids(user: User) -> set[int]:
    """A person's own feed: the services they approve (or own, or approve for someone away who
    delegated to them) or request releases for."""
    if not user.is_active:
        return set()
    query = (
        Q(pk__in=Service.objects.restrict(user, "approve", delegated=True))
        | Q(pk__in=Service.objects.restrict(user, "request"))
        | Q(pk__in=user.owned_services.all())
    )
    return set(Service.objects.filter(query).values_list("pk", flat=True))


def team_service_ids(team: Team) -> set[int]:
    """Services the team owns, as primary or co-owning team."""
    query = Q(team=team) | Q(co_owning_teams=team)
    return set(Service.objects.filter(query).values_list("pk", flat=True))


def entries_between(
    *, service_ids: Collection[int] | None, start: datetime, end: datetime, expand: bool
) -> list[CalendarEntry]:
    """Every source's entries overlapping [start, end) for these services (None: all), in
    start order. The changes' and freezes' own sources come first, then registered ones."""
    sources = {"changes": change_source, "freezes": freeze_source, **registered_sources()}
    entries: list[CalendarEntry] = []
    for source in sources.values():
        entries.extend(source(service_ids=service_ids, start=start, end=end, expand=expand))
    return sorted(entries, key=lambda e: (e.start, e.end, e.uid))


def entry_conflicts(
    entries: list[CalendarEntry], start: datetime, end: datetime, visible: set[int] | None = None
) -> dict[str, list[Conflict]]:
    """Conflicts of each change and release shown (cancelled ones aside), by entry uid, read
    with one board for the whole range. A change on a service outside `visible` (None: every
    service) is not named."""
    checked = [e for e in entries if e.kind in CHECKED_KINDS and e.status != Status.CANCELLED]
    ids = {pk for entry in checked for pk in entry.service_ids}
    if not ids:
        return {}
    services = {s.pk: s for s in Service.objects.filter(pk__in=ids)}
    low = min([start, *(e.start for e in checked)])
    high = max([end, *(e.end for e in checked)])
    board = ConflictBoard.load(list(services.values()), low, high)
    found = {}
    for entry in checked:
        mine = [services[pk] for pk in sorted(entry.service_ids) if pk in services]
        conflicts = board.conflicts(mine, entry.start, entry.end, entry.change_id)
        if conflicts:
            found[entry.uid] = [conflict.seen_by(visible) for conflict in conflicts]
    return found

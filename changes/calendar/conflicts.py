"""Scheduling conflicts of a planned window: what else happens to the same services then.

Three kinds, each a `Conflict` with a message in words:
- "overlap": another change planned at an overlapping time on the same service, or on a service
  directly linked to it (one depends on the other, Service.depends_on);
- "freeze": the window falls in an occurrence of a hard or soft freeze covering the service. A
  freeze is scoped to environments and a change names none, so a freeze in any environment
  counts (the message says so);
- "approvers": nobody who approves the service (an approver grant in force, any environment)
  is both at work at some time in the window (weekdays, their working hours in their zone) and
  not delegated away for the whole of it.

The data for a whole range is read once (`ConflictBoard.load`, a fixed number of queries
whatever the rows), then each window is checked in Python: the calendar checks every change
and release it shows with one board.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from changes.calendar.sources import (
    OPEN_ENDED,
    change_url,
    changes_between,
    freeze_occurrences,
    freeze_service_ids,
    freezes_between,
    planned_end,
)
from changes.freezes.models import Freeze
from changes.records.models import ChangeRecord
from governance.authority.models import ROLE_PERMISSIONS, SERVICE_ACTIONS
from governance.authority.selectors import auditor_grants
from governance.models import Delegation, RoleAssignment, Service, User

# Past this length a window meets somebody's working hours whatever their zone.
LONG_WINDOW = timedelta(days=14)


@dataclass(frozen=True)
class Conflict:
    """One reason a planned window is a bad idea, for people to read."""

    kind: str  # "overlap", "freeze", "approvers"
    message: str
    label: str  # what it conflicts with: a change, a freeze, a service
    url: str = ""
    # The other change's services, so a page can hide a change its viewer may not see.
    service_ids: frozenset[int] = frozenset()

    def seen_by(self, visible: set[int] | None) -> Conflict:
        """This conflict as someone seeing only `visible` services (None: all) may read it."""
        if visible is None or not self.service_ids or not self.service_ids.isdisjoint(visible):
            return self
        message = "Another change, on a service you may not see, is planned at the same time."
        return Conflict(kind=self.kind, message=message, label="", service_ids=self.service_ids)


def moment(instant: datetime, zone: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"


def at_work_during(person: User, start: datetime, end: datetime) -> bool:
    """Whether [start, end) meets this person's working hours on some weekday."""
    if end - start >= LONG_WINDOW:
        return True
    zone = ZoneInfo(person.time_zone)
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    while day <= last:
        if day.weekday() < 5:
            midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
            opens = midnight + timedelta(hours=person.working_hours_start)
            closes = midnight + timedelta(hours=person.working_hours_end)
            if opens < end and closes > start:
                return True
        day += timedelta(days=1)
    return False


@dataclass
class ConflictBoard:
    """Everything needed to check windows on some services within one range of time."""

    links: dict[int, dict[int, str]]  # service → linked service → "depends on" / "is needed by"
    changes: list[ChangeRecord]
    freezes: list[Freeze]
    freeze_scopes: dict[int, frozenset[int] | None]
    approvers: dict[int, list[User]]  # service → people who may approve it
    delegations: list[Delegation]

    @classmethod
    def load(cls, services: list[Service], start: datetime, end: datetime) -> ConflictBoard:
        """Read the range once: links, changes, freezes, approvers and their delegations."""
        ids = {s.pk for s in services}
        links = _links(ids)
        neighbours = ids | {other for linked in links.values() for other in linked}
        changes = [c for c in changes_between(start, end, neighbours) if c.state != "cancelled"]
        freezes = freezes_between(start, end)
        approvers = _approvers(services)
        people = {p.pk for group in approvers.values() for p in group}
        delegations = list(
            Delegation.objects.overlapping(start, end).filter(delegator_id__in=people)
        )
        return cls(links, changes, freezes, freeze_service_ids(freezes), approvers, delegations)

    def conflicts(
        self,
        services: Iterable[Service],
        start: datetime,
        end: datetime,
        exclude_change_id: int | None = None,
    ) -> list[Conflict]:
        """The conflicts of one window on these services."""
        services = list(services)
        return [
            *self._overlaps(services, start, end, exclude_change_id),
            *self._freezes(services, start, end),
            *self._approvers(services, start, end),
        ]

    def _overlaps(self, services, start, end, exclude_change_id) -> list[Conflict]:
        found = []
        for change in self.changes:
            if change.pk == exclude_change_id:
                continue
            if not (change.planned_start < end and planned_end(change) > start):
                continue
            reason = self._shared(services, {s.pk: s for s in change.services.all()})
            if reason:
                when = moment(change.planned_start, change.time_zone)
                found.append(
                    Conflict(
                        kind="overlap",
                        message=f"{change.ref} {change.title} is planned from {when} {reason}.",
                        label=change.ref,
                        url=change_url(change.pk),
                        service_ids=frozenset(s.pk for s in change.services.all()),
                    )
                )
        return found

    def _shared(self, services: list[Service], theirs: dict[int, Service]) -> str:
        """How another change's services meet these: the same service, or a linked one."""
        for service in services:
            if service.pk in theirs:
                return f"on {service.name} too"
        for service in services:
            for other, relation in self.links.get(service.pk, {}).items():
                if other in theirs:
                    return f"on {theirs[other].name}, which {service.name} {relation}"
        return ""

    def _freezes(self, services, start, end) -> list[Conflict]:
        ids = {s.pk for s in services}
        found = []
        for freeze in self.freezes:
            scope = self.freeze_scopes[freeze.pk]
            if scope is not None and scope.isdisjoint(ids):
                continue
            pairs = freeze_occurrences(freeze, start, end)
            if not pairs:
                continue
            kind = "hard" if freeze.kind == Freeze.Kind.HARD else "soft"
            environments = ", ".join(e.name for e in freeze.environments.all())
            found.append(
                Conflict(
                    kind="freeze",
                    message=(
                        f"The window falls in the {kind} freeze '{freeze.name}' "
                        f"({freeze.window_label(*pairs[0])}) on {freeze.scope_label()}. "
                        f"The freeze holds {environments}; a change names no environment, so "
                        "a freeze in any environment counts."
                    ),
                    label=freeze.name,
                    url=reverse("changes:freeze_detail", kwargs={"pk": freeze.pk}),
                )
            )
        return found

    def _approvers(self, services, start, end) -> list[Conflict]:
        found = []
        for service in services:
            people = self.approvers.get(service.pk, [])
            if not people:
                message = f"Nobody holds approval authority on {service.name}."
            elif any(self._available(p, service, start, end) for p in people):
                continue
            else:
                message = f"None of {service.name}'s approvers is available in the window: " + (
                    "; ".join(self._why_away(p, service, start, end) for p in people)
                )
            found.append(Conflict(kind="approvers", message=message, label=service.name))
        return found

    def _delegated_away(self, person: User, service: Service, start, end) -> Delegation | None:
        for delegation in self.delegations:
            if (
                delegation.delegator_id == person.pk
                and delegation.service_id in (None, service.pk)
                and delegation.starts_at <= start
                and delegation.ends_at >= end
            ):
                return delegation
        return None

    def _available(self, person: User, service: Service, start, end) -> bool:
        return at_work_during(person, start, end) and not self._delegated_away(
            person, service, start, end
        )

    def _why_away(self, person: User, service: Service, start, end) -> str:
        if self._delegated_away(person, service, start, end):
            return f"{person.display_name} has delegated their authority away"
        hours = f"{person.working_hours_start:02d}:00-{person.working_hours_end:02d}:00"
        return f"{person.display_name} works {hours} {person.time_zone}, weekdays"


def _links(ids: set[int]) -> dict[int, dict[int, str]]:
    """Direct dependency links of these services, both ways (one query)."""
    through = Service.depends_on.through
    rows = through.objects.filter(Q(from_service_id__in=ids) | Q(to_service_id__in=ids))
    links: dict[int, dict[int, str]] = {}
    for needs, needed in rows.values_list("from_service_id", "to_service_id"):
        links.setdefault(needs, {})[needed] = "depends on"
        links.setdefault(needed, {})[needs] = "is needed by"
    return links


def _approvers(services: list[Service]) -> dict[int, list[User]]:
    """Per service, the active people (no service accounts, no auditors) holding an approver
    grant in force on it, in any environment: eligible_approvers' service_approvers, for
    several services in one query."""
    codename = SERVICE_ACTIONS["approve"]
    roles = [role for role, codenames in ROLE_PERMISSIONS.items() if codename in codenames]
    ids = {s.pk for s in services}
    teams = {s.team_id for s in services}
    grants = (
        RoleAssignment.objects.filter(role__in=roles)
        .filter(
            Q(service_id__in=ids)
            | Q(team_id__in=teams)
            | Q(service__isnull=True, team__isnull=True)
        )
        .exclude(expires_at__lte=timezone.now())
        .filter(user__is_active=True, user__is_service_account=False)
        .exclude(user_id__in=auditor_grants().values("user_id"))
        .select_related("user")
    )
    people: dict[int, dict[int, User]] = {s.pk: {} for s in services}
    for grant in grants:
        for service in services:
            if _grant_covers(grant, service):
                people[service.pk][grant.user_id] = grant.user
    return {pk: sorted(group.values(), key=lambda p: p.username) for pk, group in people.items()}


def _grant_covers(grant: RoleAssignment, service: Service) -> bool:
    if grant.service_id is not None:
        return grant.service_id == service.pk
    if grant.team_id is not None:
        return grant.team_id == service.team_id
    return True  # a grant on every service


def window_conflicts(
    services: Iterable[Service],
    start: datetime | None,
    end: datetime | None,
    exclude_change: ChangeRecord | None = None,
) -> list[Conflict]:
    """The conflicts of planning work on `services` in [start, end) (no end: an hour).
    The release page asks this for a planned release; `exclude_change` is its own change."""
    services = list(services)
    if not services or start is None:
        return []
    end = end or start + OPEN_ENDED
    board = ConflictBoard.load(services, start, end)
    exclude = exclude_change.pk if exclude_change else None
    return board.conflicts(services, start, end, exclude_change_id=exclude)


def change_conflicts(change: ChangeRecord) -> list[Conflict]:
    """The conflicts of a change's planned window; none once it has ended or without a window."""
    if change.planned_start is None or change.state in ChangeRecord.ENDED_STATES:
        return []
    return window_conflicts(
        change.services.all(), change.planned_start, planned_end(change), exclude_change=change
    )

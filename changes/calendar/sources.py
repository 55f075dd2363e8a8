"""The calendar's own sources: change records with a planned window, and freezes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from django.db.models import Prefetch, Q
from django.urls import NoReverseMatch, reverse

from changes.calendar.entries import CalendarEntry, Status
from changes.freezes.models import WALL_FORMAT, Freeze
from changes.records.models import ChangeRecord
from governance.models import Service

# A change planned with a start and no end is drawn (and checked for conflicts) as an hour.
OPEN_ENDED = timedelta(hours=1)

CHANGE_STATUS = {
    ChangeRecord.State.NEW: Status.TENTATIVE,
    ChangeRecord.State.ASSESS: Status.TENTATIVE,
    ChangeRecord.State.AUTHORISE: Status.TENTATIVE,
    ChangeRecord.State.SCHEDULED: Status.CONFIRMED,
    ChangeRecord.State.IMPLEMENT: Status.CONFIRMED,
    ChangeRecord.State.REVIEW: Status.CONFIRMED,
    ChangeRecord.State.CLOSED: Status.CONFIRMED,
    ChangeRecord.State.CANCELLED: Status.CANCELLED,
}


def change_url(change_id: int) -> str:
    """The change's page; empty while that page does not exist in this installation."""
    try:
        return reverse("changes:change_detail", kwargs={"pk": change_id})
    except NoReverseMatch:
        return ""


def planned_end(change: ChangeRecord) -> datetime:
    return change.planned_end or change.planned_start + OPEN_ENDED


def changes_between(
    start: datetime, end: datetime, service_ids: Collection[int] | None = None
) -> list[ChangeRecord]:
    """Changes whose planned window overlaps [start, end), with their services (2 queries)."""
    changes = ChangeRecord.objects.filter(
        planned_start__isnull=False, planned_start__lt=end
    ).filter(
        Q(planned_end__gt=start) | Q(planned_end__isnull=True, planned_start__gt=start - OPEN_ENDED)
    )
    if service_ids is not None:
        changes = changes.filter(services__in=service_ids).distinct()
    services = Prefetch("services", queryset=Service.objects.only("id", "name", "slug"))
    return list(changes.prefetch_related(services).order_by("planned_start", "pk"))


def change_entry(change: ChangeRecord) -> CalendarEntry:
    services = list(change.services.all())
    names = ", ".join(s.name for s in services) or "no service named"
    return CalendarEntry(
        uid=f"change-{change.pk}",
        kind="change",
        title=f"{change.ref} {change.title}",
        start=change.planned_start,
        end=planned_end(change),
        time_zone=change.time_zone,
        status=CHANGE_STATUS[change.state],
        url=change_url(change.pk) or change.external_url,
        description=(
            f"{change.get_type_display()} change, {change.get_state_display().lower()}; "
            f"risk {change.risk}, impact {change.impact}. Services: {names}."
        ),
        service_ids=frozenset(s.pk for s in services),
        change_id=change.pk,
        label=change.get_state_display(),
    )


def change_source(
    *, service_ids: Collection[int] | None, start: datetime, end: datetime, expand: bool
) -> list[CalendarEntry]:
    return [change_entry(change) for change in changes_between(start, end, service_ids)]


def freezes_between(start: datetime, end: datetime) -> list[Freeze]:
    """Freezes that may have an occurrence overlapping [start, end), scopes prefetched."""
    return list(
        Freeze.objects.filter(starts_at__lt=end)
        .filter(Q(last_ends_at__isnull=True) | Q(last_ends_at__gt=start))
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start))
        .prefetch_related("environments", "services", "teams")
    )


def freeze_service_ids(freezes: list[Freeze]) -> dict[int, frozenset[int] | None]:
    """Each freeze's services (a team in its scope stands for the services it owns now);
    None for a freeze on every service. One query for the teams' services."""
    team_ids = {team.pk for freeze in freezes for team in freeze.teams.all()}
    by_team: dict[int, set[int]] = {}
    if team_ids:
        for pk, team_id in Service.objects.filter(team_id__in=team_ids).values_list("pk", "team"):
            by_team.setdefault(team_id, set()).add(pk)
    scopes: dict[int, frozenset[int] | None] = {}
    for freeze in freezes:
        ids = {s.pk for s in freeze.services.all()}
        teams = [t.pk for t in freeze.teams.all()]
        for team_id in teams:
            ids |= by_team.get(team_id, set())
        scopes[freeze.pk] = frozenset(ids) if ids or teams else None
    return scopes


def freeze_occurrences(freeze: Freeze, start: datetime, end: datetime) -> list:
    """Occurrences overlapping [start, end), cut short by an early end."""
    pairs = freeze.occurrences_between(start, end)
    if freeze.ended_at is not None:
        pairs = [(s, min(e, freeze.ended_at)) for s, e in pairs if s < freeze.ended_at]
    return pairs


def freeze_entry(
    freeze: Freeze, scope: frozenset[int] | None, start, end, **extra
) -> CalendarEntry:
    kind = "hard" if freeze.kind == Freeze.Kind.HARD else "soft"
    cancelled = freeze.ended_at is not None and freeze.ended_at <= freeze.starts_at
    return CalendarEntry(
        uid=extra.pop("uid", f"freeze-{freeze.pk}"),
        kind="freeze",
        title=f"{kind.capitalize()} freeze: {freeze.name}",
        start=start,
        end=end,
        time_zone=freeze.time_zone,
        status=Status.CANCELLED if cancelled else Status.CONFIRMED,
        url=reverse("changes:freeze_detail", kwargs={"pk": freeze.pk}),
        description=f"{freeze.get_kind_display()} on {freeze.scope_label()}. {freeze.reason}",
        service_ids=scope or frozenset(),
        everywhere=scope is None,
        label=f"{kind} freeze",
        extra={"ended_at": freeze.ended_at, "kind": freeze.kind},
        **extra,
    )


def _first_end(freeze: Freeze) -> datetime:
    """A one-off freeze ended early ends then; a rule keeps its occurrences' length."""
    if freeze.ended_at is not None and not freeze.is_recurring:
        return max(min(freeze.ends_at, freeze.ended_at), freeze.starts_at)
    return freeze.ends_at


def freeze_source(
    *, service_ids: Collection[int] | None, start: datetime, end: datetime, expand: bool
) -> list[CalendarEntry]:
    freezes = freezes_between(start, end)
    scopes = freeze_service_ids(freezes)
    entries = []
    for freeze in freezes:
        scope = scopes[freeze.pk]
        if service_ids is not None and scope is not None and scope.isdisjoint(service_ids):
            continue
        pairs = freeze_occurrences(freeze, start, end)
        if not pairs:
            continue
        if expand:
            entries += [
                freeze_entry(freeze, scope, s, e, uid=f"freeze-{freeze.pk}-{s:%Y%m%dT%H%M%SZ}")
                for s, e in pairs
            ]
        else:
            exdates = tuple(datetime.strptime(w, WALL_FORMAT) for w in freeze.exdates)
            entries.append(
                freeze_entry(
                    freeze,
                    scope,
                    freeze.starts_at,
                    _first_end(freeze),
                    recurrence=freeze.recurrence,
                    exdates=exdates if freeze.recurrence else (),
                )
            )
    return entries

"""Putting things on the CAB's agenda, and the meetings' life cycle."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from changes.cab.exceptions import (
    InvalidSchedule,
    MeetingNotOpen,
    NotAMember,
    OutcomeNotAllowed,
    QuorumNotMet,
)
from changes.cab.models import AgendaItem, CabMeeting, CabSchedule
from changes.cab.recurrence import Rule, occurrences
from changes.records.models import ChangeRecord
from changes.reviews.models import Review
from changes.wall_time import wall_to_instant
from governance.authority.services import require_administrator
from governance.ledger import services as ledger
from governance.models import Service, User


def next_meeting(service: Service | None, now: datetime) -> CabMeeting | None:
    """The next meeting not yet started that covers `service` (a meeting naming no services
    covers them all)."""
    meetings = CabMeeting.objects.filter(status=CabMeeting.Status.SCHEDULED, starts_at__gt=now)
    if service is not None:
        meetings = meetings.filter(Q(services__isnull=True) | Q(services=service))
    return meetings.order_by("starts_at", "pk").first()


def add_agenda_item(
    *,
    meeting: CabMeeting,
    key: str,
    kind: str,
    title: str,
    detail: str = "",
    change: ChangeRecord | None = None,
    release_id: int | None = None,
    review: Review | None = None,
    actor: User | None = None,
) -> tuple[AgendaItem, bool]:
    """Put an item on `meeting`'s agenda unless one about the same subject (`key`) is there.

    Returns the item and whether it was added now. Safe to call twice, and from two workers at
    once: the unique (meeting, key) constraint decides, inside a savepoint.
    """
    existing = AgendaItem.objects.filter(meeting=meeting, key=key).first()
    if existing is not None:
        return existing, False
    position = meeting.items.count() + 1
    try:
        with transaction.atomic():
            item = AgendaItem.objects.create(
                meeting=meeting,
                key=key,
                kind=kind,
                position=position,
                title=title[:250],
                detail=detail,
                change=change,
                release_id=release_id,
                review=review,
                added_by=actor,
            )
            ledger.append(
                kind="cab.agenda_item_added",
                subject=f"cab_meeting:{meeting.pk}",
                actor=actor.username if actor else "system",
                payload={"key": key, "kind": kind, "title": item.title},
            )
    except IntegrityError:
        return AgendaItem.objects.get(meeting=meeting, key=key), False
    return item, True


# --- Schedules and meetings ----------------------------------------------------------------------

# Outcomes each kind of item may get; "deferred" and "needs information" go to the next meeting.
APPROVAL_KINDS = (AgendaItem.Kind.ESCALATED_APPROVAL, AgendaItem.Kind.CAB_APPROVAL)
CARRIED_OUTCOMES = (AgendaItem.Outcome.DEFERRED, AgendaItem.Outcome.NEEDS_INFORMATION)
OUTCOMES: dict[str, tuple[str, ...]] = {
    **{kind: ("approved", "rejected", *CARRIED_OUTCOMES) for kind in APPROVAL_KINDS},
    AgendaItem.Kind.EMERGENCY_REVIEW: ("justified", "not_justified", *CARRIED_OUTCOMES),
}
OTHER_OUTCOMES = ("reviewed", *CARRIED_OUTCOMES)
OPEN_STATUSES = (CabMeeting.Status.SCHEDULED, CabMeeting.Status.IN_PROGRESS)


def outcomes_for(kind: str) -> tuple[str, ...]:
    """The outcomes an item of this kind may be given."""
    return OUTCOMES.get(kind, OTHER_OUTCOMES)


@dataclass(frozen=True)
class ScheduleInput:
    """A schedule as the form (or a seed command) gives it, already validated for shape."""

    name: str
    rule: Rule
    first_day: date
    local_time: time
    time_zone: str
    duration_minutes: int
    quorum: int
    members: Sequence[User]
    services: Sequence[Service] = ()
    active: bool = True


def save_schedule(
    *, data: ScheduleInput, actor: User, schedule: CabSchedule | None = None
) -> CabSchedule:
    """Create or change a recurring meeting series (administrators only).

    Meetings already materialised keep their time; the next preparation adds the new rule's.
    """
    require_administrator(actor, "change the CAB's meeting schedule")
    _check_schedule(data)
    zone = ZoneInfo(data.time_zone)
    first = wall_to_instant(datetime.combine(data.first_day, data.local_time), zone)
    with transaction.atomic():
        schedule = schedule or CabSchedule(created_by=actor)
        schedule.name, schedule.rrule, schedule.first_start = data.name, data.rule.to_rrule(), first
        schedule.time_zone, schedule.duration_minutes = data.time_zone, data.duration_minutes
        schedule.quorum, schedule.active = data.quorum, data.active
        try:
            with transaction.atomic():
                schedule.save()
        except IntegrityError:
            raise InvalidSchedule(
                f"A schedule named {data.name!r} exists already.",
                fields={"name": ["Choose another name."]},
            ) from None
        schedule.members.set(data.members)
        schedule.services.set(data.services)
        ledger.append(
            kind="cab.schedule_saved",
            subject=f"cab_schedule:{schedule.pk}",
            actor=actor.username,
            payload=_schedule_payload(schedule, data),
        )
    return schedule


def _check_schedule(data: ScheduleInput) -> None:
    if not data.rule.days:
        raise InvalidSchedule("Choose at least one day.", fields={"days": ["Choose a day."]})
    if data.time_zone not in available_timezones():
        raise InvalidSchedule(
            f"Unknown time zone {data.time_zone!r}.", fields={"time_zone": ["Unknown zone."]}
        )
    if data.quorum > len(data.members):
        raise InvalidSchedule(
            f"A quorum of {data.quorum} needs at least {data.quorum} members.",
            fields={"quorum": ["More than the members listed."]},
        )


def _schedule_payload(schedule: CabSchedule, data: ScheduleInput) -> dict:
    return {
        "name": schedule.name,
        "rrule": schedule.rrule,
        "first_start": schedule.first_start.isoformat(),
        "time_zone": schedule.time_zone,
        "duration_minutes": schedule.duration_minutes,
        "quorum": schedule.quorum,
        "members": sorted(user.username for user in data.members),
        "services": sorted(service.slug for service in data.services),
        "active": schedule.active,
    }


@dataclass(frozen=True)
class MeetingInput:
    """A one-off meeting: its title, start (an instant), length, quorum and people."""

    title: str
    starts_at: datetime
    duration_minutes: int
    time_zone: str
    quorum: int
    members: Sequence[User]
    services: Sequence[Service] = ()


def create_meeting(*, data: MeetingInput, actor: User) -> CabMeeting:
    """Call a one-off CAB meeting (administrators only)."""
    require_administrator(actor, "call a CAB meeting")
    if data.quorum > len(data.members):
        raise InvalidSchedule(
            f"A quorum of {data.quorum} needs at least {data.quorum} members.",
            fields={"quorum": ["More than the members listed."]},
        )
    with transaction.atomic():
        meeting = CabMeeting.objects.create(
            title=data.title,
            starts_at=data.starts_at,
            ends_at=data.starts_at + timedelta(minutes=data.duration_minutes),
            time_zone=data.time_zone,
            quorum=data.quorum,
        )
        meeting.members.set(data.members)
        meeting.services.set(data.services)
        _ledger_scheduled(meeting, actor.username)
    return meeting


def materialise_meetings(*, now: datetime, days: int = 28) -> list[CabMeeting]:
    """Create the meetings of every active schedule starting in the next `days` days.

    Idempotent: an occurrence already created is skipped, and two workers creating the same
    one at once are kept apart by the unique (schedule, starts_at) constraint.
    """
    created = []
    schedules = CabSchedule.objects.filter(active=True).prefetch_related("members", "services")
    for schedule in schedules:
        existing = set(
            schedule.meetings.filter(starts_at__gte=now).values_list("starts_at", flat=True)
        )
        for start in occurrences(schedule, now, now + timedelta(days=days)):
            if start not in existing and (meeting := _materialise(schedule, start)) is not None:
                created.append(meeting)
    return created


def _materialise(schedule: CabSchedule, start: datetime) -> CabMeeting | None:
    try:
        with transaction.atomic():
            meeting = CabMeeting.objects.create(
                schedule=schedule,
                title=schedule.name,
                starts_at=start,
                ends_at=start + timedelta(minutes=schedule.duration_minutes),
                time_zone=schedule.time_zone,
                quorum=schedule.quorum,
            )
            meeting.members.set(schedule.members.all())
            meeting.services.set(schedule.services.all())
            _ledger_scheduled(meeting, "system")
    except IntegrityError:
        return None  # another worker created it first
    return meeting


def _ledger_scheduled(meeting: CabMeeting, actor: str) -> None:
    ledger.append(
        kind="cab.meeting_scheduled",
        subject=f"cab_meeting:{meeting.pk}",
        actor=actor,
        payload={
            "title": meeting.title,
            "starts_at": meeting.starts_at.isoformat(),
            "ends_at": meeting.ends_at.isoformat(),
            "quorum": meeting.quorum,
            "members": sorted(meeting.members.values_list("username", flat=True)),
        },
    )


# --- A meeting, live -----------------------------------------------------------------------------


def lock_meeting(meeting: CabMeeting) -> CabMeeting:
    """The meeting's row, locked until the transaction ends: attendance, opening, outcomes and
    closing of one meeting happen one at a time, so a quorum is never counted on stale rows."""
    return CabMeeting.objects.select_for_update().get(pk=meeting.pk)


def _require_member(meeting: CabMeeting, actor: User) -> None:
    if not meeting.members.filter(pk=actor.pk).exists():
        raise NotAMember(f"Only members of {meeting.title} may do this.")


def mark_attendance(*, meeting: CabMeeting, actor: User, present: bool) -> CabMeeting:
    """A member says they are present (or have left). Each member answers for themselves only,
    so nobody can make a quorum out of absent colleagues."""
    with transaction.atomic():
        meeting = lock_meeting(meeting)
        _require_member(meeting, actor)
        if meeting.status not in OPEN_STATUSES:
            raise MeetingNotOpen(f"{meeting.title} is {meeting.get_status_display().lower()}.")
        if present:
            meeting.attendees.add(actor)
        else:
            meeting.attendees.remove(actor)
        ledger.append(
            kind="cab.attendance",
            subject=f"cab_meeting:{meeting.pk}",
            actor=actor.username,
            payload={"present": present, "attendees": meeting.attendees.count()},
        )
    return meeting


def open_meeting(*, meeting: CabMeeting, actor: User) -> CabMeeting:
    """Start the meeting; whoever opens it chairs it unless a chair was named."""
    with transaction.atomic():
        meeting = lock_meeting(meeting)
        _require_member(meeting, actor)
        if meeting.status != CabMeeting.Status.SCHEDULED:
            raise MeetingNotOpen(
                f"{meeting.title} is {meeting.get_status_display().lower()}; only a scheduled "
                "meeting can be opened."
            )
        meeting.status, meeting.opened_at = CabMeeting.Status.IN_PROGRESS, timezone.now()
        meeting.chair = meeting.chair or actor
        meeting.save(update_fields=["status", "opened_at", "chair"])
        ledger.append(
            kind="cab.meeting_opened",
            subject=f"cab_meeting:{meeting.pk}",
            actor=actor.username,
            payload={"chair": meeting.chair.username},
        )
    return meeting


def check_outcome(*, item: AgendaItem, meeting: CabMeeting, actor: User, outcome: str) -> None:
    """Refuse an outcome unless the meeting (locked by the caller) is running with its quorum,
    the actor is a member present, the item has none yet and the outcome fits its kind."""
    _require_member(meeting, actor)
    if meeting.status != CabMeeting.Status.IN_PROGRESS:
        raise MeetingNotOpen(
            "Outcomes are recorded only while the meeting is in progress; "
            f"{meeting.title} is {meeting.get_status_display().lower()}."
        )
    present = meeting.attendees.count()
    if present < meeting.quorum:
        raise QuorumNotMet(
            f"The quorum is {meeting.quorum} members present and {present} are: "
            "no outcome can be recorded until enough members mark themselves present."
        )
    if not meeting.attendees.filter(pk=actor.pk).exists():
        raise NotAMember("Mark yourself present before recording an outcome.")
    if item.outcome:
        raise OutcomeNotAllowed(
            f"This item's outcome is recorded already: {item.get_outcome_display().lower()}."
        )
    if outcome not in outcomes_for(item.kind):
        allowed = ", ".join(AgendaItem.Outcome(o).label.lower() for o in outcomes_for(item.kind))
        raise OutcomeNotAllowed(
            f"A {item.get_kind_display().lower()} takes one of: {allowed}.",
            fields={"outcome": ["Not an outcome for this item."]},
        )


def save_outcome(*, item: AgendaItem, actor: User, outcome: str, minutes: str) -> AgendaItem:
    """Write the item's outcome and minutes and its ledger entry. The caller holds the meeting's
    lock and has run check_outcome and the outcome's own action in the same transaction."""
    item.outcome, item.minutes = outcome, minutes
    item.recorded_by, item.recorded_at = actor, timezone.now()
    item.save(update_fields=["outcome", "minutes", "recorded_by", "recorded_at"])
    ledger.append(
        kind="cab.outcome_recorded",
        subject=f"cab_meeting:{item.meeting_id}",
        actor=actor.username,
        payload={"item": item.key, "kind": item.kind, "outcome": outcome, "minutes": minutes},
    )
    return item


def record_outcome(*, item: AgendaItem, actor: User, outcome: str, minutes: str) -> AgendaItem:
    """Record an outcome that acts on nothing else (reviews, changes, items added by hand).

    Outcomes that decide a release or judge an emergency go through the approvals app
    (approvals.cab.services.record_item_outcome), which calls the same checks.
    """
    minutes = required_minutes(minutes)
    with transaction.atomic():
        meeting = lock_meeting(item.meeting)
        item = AgendaItem.objects.select_for_update().get(pk=item.pk)
        check_outcome(item=item, meeting=meeting, actor=actor, outcome=outcome)
        acting = item.kind in (*APPROVAL_KINDS, AgendaItem.Kind.EMERGENCY_REVIEW)
        if acting and outcome not in CARRIED_OUTCOMES:
            # Saving it here would record a decision that was never made: it needs the approvals
            # app's record_item_outcome, which makes it.
            raise OutcomeNotAllowed("This outcome acts on a release or an emergency.")
        return save_outcome(item=item, actor=actor, outcome=outcome, minutes=minutes)


def required_minutes(minutes: str) -> str:
    """The minutes, trimmed; refused when empty (every outcome has minutes)."""
    minutes = (minutes or "").strip()
    if not minutes:
        raise OutcomeNotAllowed(
            "Minutes are required for every outcome.", fields={"minutes": ["Required."]}
        )
    return minutes


def add_item_by_hand(
    *, meeting: CabMeeting, actor: User, title: str, detail: str, change: ChangeRecord | None
) -> AgendaItem:
    """A member puts something on a meeting's agenda that is not over yet."""
    title = (title or "").strip()
    if not title:
        raise OutcomeNotAllowed("Give the item a title.", fields={"title": ["Required."]})
    with transaction.atomic():
        meeting = lock_meeting(meeting)
        _require_member(meeting, actor)
        if meeting.status not in OPEN_STATUSES:
            raise MeetingNotOpen(f"{meeting.title} is {meeting.get_status_display().lower()}.")
        item, _ = add_agenda_item(
            meeting=meeting,
            key=f"manual:{uuid.uuid4().hex[:12]}",
            kind=AgendaItem.Kind.OTHER,
            title=title,
            detail=(detail or "").strip(),
            change=change,
            actor=actor,
        )
    return item


def close_meeting(*, meeting: CabMeeting, actor: User, notes: str = "") -> CabMeeting:
    """End the meeting. Items deferred, needing information or not reached go on the next
    meeting (of the same series when there is one)."""
    with transaction.atomic():
        meeting = lock_meeting(meeting)
        _require_member(meeting, actor)
        if meeting.status != CabMeeting.Status.IN_PROGRESS:
            raise MeetingNotOpen("Only a meeting in progress can be closed.")
        meeting.status, meeting.closed_at = CabMeeting.Status.CLOSED, timezone.now()
        meeting.notes = (notes or "").strip() or meeting.notes
        meeting.save(update_fields=["status", "closed_at", "notes"])
        carried, target = _carry_over(meeting)
        ledger.append(
            kind="cab.meeting_closed",
            subject=f"cab_meeting:{meeting.pk}",
            actor=actor.username,
            payload={
                "attendees": sorted(meeting.attendees.values_list("username", flat=True)),
                "carried_over": carried,
                "to_meeting": target.pk if target else None,
            },
        )
    return meeting


def _carry_over(meeting: CabMeeting) -> tuple[list[str], CabMeeting | None]:
    items = meeting.items.filter(Q(outcome="") | Q(outcome__in=CARRIED_OUTCOMES))
    if not items.exists():
        return [], None
    target = following_meeting(meeting)
    if target is None:
        # Nothing scheduled yet: the queue still holds these, and the next preparation adds them.
        return [], None
    keys = []
    for item in items.order_by("position", "pk"):
        why = item.get_outcome_display().lower() if item.outcome else "not reached"
        add_agenda_item(
            meeting=target,
            key=item.key,
            kind=item.kind,
            title=item.title,
            detail=_carried_detail(item, meeting, why),
            change=item.change,
            release_id=item.release_id,
            review=item.review,
            actor=None,
        )
        keys.append(item.key)
    return keys, target


def _carried_detail(item: AgendaItem, meeting: CabMeeting, why: str) -> str:
    note = f"Carried over from {meeting.title} on {meeting.local_start:%Y-%m-%d} ({why})."
    if item.minutes:
        note += f" Minutes then: {item.minutes}"
    return f"{item.detail}\n\n{note}".strip()


def following_meeting(meeting: CabMeeting) -> CabMeeting | None:
    """The next scheduled meeting after this one: of the same series first, else any covering
    all of this one's services."""
    later = CabMeeting.objects.filter(
        status=CabMeeting.Status.SCHEDULED, starts_at__gt=meeting.starts_at
    ).exclude(pk=meeting.pk)
    if meeting.schedule_id is not None:
        same = later.filter(schedule_id=meeting.schedule_id).order_by("starts_at").first()
        if same is not None:
            return same
    return later.filter(services__isnull=True).order_by("starts_at", "pk").first()

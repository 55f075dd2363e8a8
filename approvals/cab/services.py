"""The CAB's work that reaches into releases and emergencies: building the agendas from the
queue, and outcomes that decide a release or judge an emergency.

An approval recorded in a meeting is a decision by the member who records it, made through
approvals.services.record_decision with every rule that applies to them (segregation of
duties, step-up, distinct people); the item's outcome is saved in the same transaction, so a
refused decision leaves the agenda as it was.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from approvals import services as approvals
from approvals.cab import queue
from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import record_secondary_review
from approvals.exceptions import InvalidTransition
from approvals.models import ApprovalStage, Release
from changes.cab import services as cab
from changes.cab.models import AgendaItem, CabMeeting
from governance.models import User

AGENDA_HORIZON = timedelta(days=7)  # agendas are built for meetings starting this soon
MATERIALISE_DAYS = 28  # meetings are created this far ahead
# Outcomes that have settled a subject: it does not go on another agenda by itself.
SETTLED = ("approved", "rejected", "reviewed", "justified", "not_justified")
VERDICTS = {"approved": "approve", "rejected": "reject"}


def prepare_cab_meetings(*, now: datetime) -> dict[str, int]:
    """Create the coming meetings of every schedule, then put each queue item on the next
    meeting covering its service, for meetings starting within a week. Idempotent: a second
    run adds nothing; an item already on a meeting not yet over, or settled by one, is left."""
    created = cab.materialise_meetings(now=now, days=MATERIALISE_DAYS)
    meetings = list(
        CabMeeting.objects.filter(
            status=CabMeeting.Status.SCHEDULED,
            starts_at__gt=now,
            starts_at__lte=now + AGENDA_HORIZON,
        )
        .prefetch_related("services")
        .order_by("starts_at", "pk")
    )
    added = 0
    if meetings:
        for kind, subject in _queue_subjects(now):
            added += _place(kind, subject, meetings)
    return {"meetings_created": len(created), "items_added": added}


def _queue_subjects(now: datetime) -> list[tuple[str, object]]:
    """Every queue item on every service whose key is on no open agenda and not settled."""
    pairs = [
        (kind, pk)
        for kind, rows in queue.kind_querysets(None).items()
        for pk in rows.order_by("pk").values_list("pk", flat=True)
    ]
    keys = {queue.subject_key(kind, pk): (kind, pk) for kind, pk in pairs}
    taken = set(
        AgendaItem.objects.filter(key__in=keys)
        .filter(meeting__status__in=cab.OPEN_STATUSES)
        .values_list("key", flat=True)
    )
    taken |= set(
        AgendaItem.objects.filter(key__in=keys, outcome__in=SETTLED).values_list("key", flat=True)
    )
    waiting = [pair for key, pair in keys.items() if key not in taken]
    subjects = queue.load_subjects(waiting)
    return [(kind, subjects[queue.subject_key(kind, pk)]) for kind, pk in waiting]


def _place(kind: str, subject, meetings: list[CabMeeting]) -> int:
    about = queue.describe(kind, subject)
    meeting = next((m for m in meetings if _covers(m, about["service_ids"])), None)
    if meeting is None:
        return 0
    _, added = cab.add_agenda_item(
        meeting=meeting,
        key=queue.subject_key(kind, subject.pk),
        kind=kind,
        title=about["title"],
        detail=about["detail"],
        change=about.get("change"),
        release_id=about.get("release_id"),
        review=about.get("review"),
    )
    return int(added)


def _covers(meeting: CabMeeting, service_ids: set[int]) -> bool:
    # A meeting naming no services covers them all.
    named = {service.pk for service in meeting.services.all()}
    return not named or bool(named & service_ids)


def record_item_outcome(
    *,
    item: AgendaItem,
    actor: User,
    outcome: str,
    minutes: str,
    step_up_code: str | None = None,
) -> AgendaItem:
    """Record an item's outcome in a meeting in progress with its quorum, acting on its subject.

    Approved / rejected on an approval item is `actor`'s own decision on the release (channel
    "cab"); justified / not justified on an emergency is `actor`'s secondary review. Any refusal
    by those services is raised as it is and nothing of the outcome is saved.
    """
    minutes = cab.required_minutes(minutes)
    with transaction.atomic():
        meeting = cab.lock_meeting(item.meeting)
        item = AgendaItem.objects.select_for_update().get(pk=item.pk)
        cab.check_outcome(item=item, meeting=meeting, actor=actor, outcome=outcome)
        _act(item, actor, outcome, minutes, step_up_code)
        return cab.save_outcome(item=item, actor=actor, outcome=outcome, minutes=minutes)


def _act(item: AgendaItem, actor: User, outcome: str, minutes: str, code: str | None) -> None:
    if outcome in VERDICTS and item.kind in cab.APPROVAL_KINDS:
        release = Release.objects.for_write().get(pk=item.release_id)
        _require_stage_open(item)
        approvals.record_decision(
            release=release,
            actor=actor,
            verdict=VERDICTS[outcome],
            rationale=minutes,
            step_up_code=code or None,
            channel="cab",
        )
    elif outcome in ("justified", "not_justified"):
        emergency = EmergencyException.objects.select_related("service").get(
            pk=_subject_id(item, "emergency")
        )
        record_secondary_review(emergency=emergency, actor=actor, outcome=outcome, notes=minutes)


def _subject_id(item: AgendaItem, prefix: str) -> int | None:
    head, _, rest = item.key.partition(":")
    return int(rest) if head == prefix and rest.isdigit() else None


def _require_stage_open(item: AgendaItem) -> None:
    # A release has one open stage at a time, and record_decision decides that one: the item's
    # stage must still be it, or the member would decide a stage the meeting never discussed.
    stage = ApprovalStage.objects.filter(pk=_subject_id(item, "stage")).first()
    if stage is None or stage.status != ApprovalStage.Status.ACTIVE:
        state = stage.get_status_display().lower() if stage else "gone"
        raise InvalidTransition(
            f"The stage this item is about is no longer open ({state}); "
            "record it as reviewed, deferred or needing information instead."
        )


def step_up_item_ids(items: list[AgendaItem]) -> set[int]:
    """Items whose release's stage asks the member for a one-time code (one query)."""
    by_stage = {
        _subject_id(item, "stage"): item.pk for item in items if item.kind in cab.APPROVAL_KINDS
    }
    stages = ApprovalStage.objects.filter(pk__in=[pk for pk in by_stage if pk], step_up=True)
    return {by_stage[pk] for pk in stages.values_list("pk", flat=True)}

"""The escalation and reminder sweeps on many overdue stages at once, as beat runs them.

The first stage of `count` seeded requests is made open and overdue and a CAB meeting is
scheduled; each sweep is timed, committing batch by batch as in production, then run again to
show that the second run finds nothing to do. Afterwards the stages, requests, approvers,
agenda and notifications are put back as they were. The ledger entries stay: the ledger is
append-only (each run adds about 20,000 to the benchmark database's ledger).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStage
from approvals.services import escalate_overdue_stages, remind_due_stages
from changes.models import AgendaItem, CabMeeting
from governance.models import LedgerEntry, Notification

STAGES = 10_000
STAGE_FIELDS = (
    "status",
    "due_at",
    "remind_at",
    "escalate_at",
    "reminded_at",
    "escalated_at",
)
REQUEST_FIELDS = ("status", "expires_at", "gate_snapshot")
Approvers = ApprovalStage.eligible_approvers.through


@dataclass
class SweepResult:
    stages: int
    escalated: int
    escalate_seconds: float
    escalate_again: int
    escalate_again_seconds: float
    reminded: int
    remind_seconds: float
    notifications: int
    agenda_items: int
    ledger_entries: int


def measure_sweeps(count: int = STAGES) -> SweepResult:
    stages = list(ApprovalStage.objects.filter(position=1).order_by("pk")[:count])
    requests = list(ApprovalRequest.objects.filter(pk__in=[s.request_id for s in stages]))
    approvers = set(
        Approvers.objects.filter(approvalstage__in=stages).values_list(
            "approvalstage_id", "user_id"
        )
    )
    last_notification = Notification.objects.order_by("-pk").values_list("pk", flat=True).first()
    try:
        return _measure(stages, requests)
    finally:
        _restore(stages, requests, approvers, last_notification or 0)


def _measure(stages: list[ApprovalStage], requests: list[ApprovalRequest]) -> SweepResult:
    now = timezone.now()
    ids = [s.pk for s in stages]
    with transaction.atomic():
        ApprovalRequest.objects.filter(pk__in=[r.pk for r in requests]).update(
            status=ApprovalRequest.Status.PENDING, expires_at=now + timedelta(days=7)
        )
        overdue = {"due_at": now - timedelta(hours=1), "reminded_at": None, "escalated_at": None}
        ApprovalStage.objects.filter(pk__in=ids).update(
            status=ApprovalStage.Status.ACTIVE,
            remind_at=now - timedelta(hours=5),
            escalate_at=now - timedelta(hours=1),
            **overdue,
        )
        CabMeeting.objects.create(
            title="Benchmark CAB",
            starts_at=now + timedelta(days=1),
            ends_at=now + timedelta(days=1, hours=1),
        )
    notifications, entries = Notification.objects.count(), LedgerEntry.objects.count()

    escalated, escalate_seconds = _timed(lambda: escalate_overdue_stages(now=now))
    again, again_seconds = _timed(lambda: escalate_overdue_stages(now=now))
    # Reminders: the same stages, before their escalation time this time.
    ApprovalStage.objects.filter(pk__in=ids).update(escalate_at=now + timedelta(hours=1), **overdue)
    reminded, remind_seconds = _timed(lambda: remind_due_stages(now=now))
    return SweepResult(
        stages=len(ids),
        escalated=escalated,
        escalate_seconds=escalate_seconds,
        escalate_again=again,
        escalate_again_seconds=again_seconds,
        reminded=reminded,
        remind_seconds=remind_seconds,
        notifications=Notification.objects.count() - notifications,
        agenda_items=AgendaItem.objects.filter(meeting__title="Benchmark CAB").count(),
        ledger_entries=LedgerEntry.objects.count() - entries,
    )


def _restore(stages, requests, approvers: set, last_notification: int) -> None:
    """Put the seeded rows back as they were (everything but the append-only ledger)."""
    with transaction.atomic():
        ApprovalStage.objects.bulk_update(stages, STAGE_FIELDS, batch_size=1000)
        ApprovalRequest.objects.bulk_update(requests, REQUEST_FIELDS, batch_size=1000)
        added = [
            pk
            for pk, stage_id, user_id in Approvers.objects.filter(
                approvalstage__in=stages
            ).values_list("pk", "approvalstage_id", "user_id")
            if (stage_id, user_id) not in approvers
        ]
        Approvers.objects.filter(pk__in=added).delete()
        AgendaItem.objects.filter(meeting__title="Benchmark CAB").delete()
        CabMeeting.objects.filter(title="Benchmark CAB").delete()
        Notification.objects.filter(pk__gt=last_notification).delete()


def _timed(action) -> tuple[int, float]:
    started = time.perf_counter()
    done = action()
    return done, time.perf_counter() - started

"""The escalation and reminder sweeps on many overdue stages at once.

Inside one transaction that is rolled back at the end (the seeded database stays as it was):
the first stage of `count` seeded requests is made open and overdue, a CAB meeting is
scheduled, and each sweep is timed on them, then run again to show that the second run finds
nothing to do.
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


class _RollBack(Exception):
    """Raised to undo everything the measurement wrote."""


def measure_sweeps(count: int = STAGES) -> SweepResult:
    result: SweepResult | None = None
    try:
        with transaction.atomic():
            result = _measure(count)
            raise _RollBack
    except _RollBack:
        pass
    assert result is not None
    return result


def _measure(count: int) -> SweepResult:
    now = timezone.now()
    rows = list(
        ApprovalStage.objects.filter(position=1)
        .order_by("pk")
        .values_list("pk", "request_id")[:count]
    )
    stage_ids, request_ids = [pk for pk, _ in rows], [r for _, r in rows]
    ApprovalRequest.objects.filter(pk__in=request_ids).update(
        status=ApprovalRequest.Status.PENDING, expires_at=now + timedelta(days=7)
    )
    overdue = {"due_at": now - timedelta(hours=1), "reminded_at": None, "escalated_at": None}
    ApprovalStage.objects.filter(pk__in=stage_ids).update(
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
    ApprovalStage.objects.filter(pk__in=stage_ids).update(
        escalate_at=now + timedelta(hours=1), **overdue
    )
    reminded, remind_seconds = _timed(lambda: remind_due_stages(now=now))
    return SweepResult(
        stages=len(stage_ids),
        escalated=escalated,
        escalate_seconds=escalate_seconds,
        escalate_again=again,
        escalate_again_seconds=again_seconds,
        reminded=reminded,
        remind_seconds=remind_seconds,
        notifications=Notification.objects.count() - notifications,
        agenda_items=AgendaItem.objects.count(),
        ledger_entries=LedgerEntry.objects.count() - entries,
    )


def _timed(action) -> tuple[int, float]:
    started = time.perf_counter()
    done = action()
    return done, time.perf_counter() - started

"""Whole-ledger verification runs, started from the auditors' ledger page or by beat.

A run is a LedgerVerification row: QUEUED when asked for, RUNNING once a worker claims it,
PASSED or FAILED when done. At most one run is queued or running at a time, and a run is claimed
with a conditional UPDATE, so a task delivered twice (or a run already finished) does nothing.

A run reports progress (a heartbeat) with every batch. One silent for STALE_AFTER was lost: a
QUEUED one (the broker was down when it was asked for) is enqueued again, a RUNNING one (its
worker died) is closed as FAILED, so neither blocks the button for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from governance.ledger import checkpoints
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger.models import LedgerHead, LedgerVerification

logger = logging.getLogger(__name__)
PROGRESS_EVERY = 1000
STALE_AFTER = timedelta(minutes=10)
ACTIVE = (LedgerVerification.Status.QUEUED, LedgerVerification.Status.RUNNING)
# Any constant of our own: the advisory lock serialises "is a run already active?" and the
# insert, so two auditors pressing the button at once still make one run.
REQUEST_LOCK = 0x5160_1ED6


def request_verification(
    *, actor, enqueue: Callable[[int], object]
) -> tuple[LedgerVerification, bool]:
    """The active run, or a new QUEUED one handed to `enqueue` (the Celery task's `delay`, which
    this bottom layer cannot import) after commit: (run, whether it is new)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REQUEST_LOCK])
        active = LedgerVerification.objects.filter(status__in=ACTIVE).order_by("pk").first()
        if active is not None and not _revive_or_close(active, enqueue):
            return active, False
        run = LedgerVerification.objects.create(requested_by=actor, progressed_at=timezone.now())
        transaction.on_commit(lambda: enqueue(run.pk), robust=True)
    return run, True


def _revive_or_close(run: LedgerVerification, enqueue: Callable[[int], object]) -> bool:
    """Deal with an active run that may have been lost; True when it was closed (start anew)."""
    now = timezone.now()
    if run.progressed_at and run.progressed_at > now - STALE_AFTER:
        return False
    if run.status == LedgerVerification.Status.QUEUED:
        # Enqueued again: if the first message does arrive after all, its claim finds the run
        # taken and does nothing.
        LedgerVerification.objects.filter(pk=run.pk).update(progressed_at=now)
        transaction.on_commit(lambda: enqueue(run.pk), robust=True)
        return False
    LedgerVerification.objects.filter(pk=run.pk).update(
        status=LedgerVerification.Status.FAILED,
        finished_at=now,
        problem=(
            f"abandoned: no progress since {run.progressed_at:%Y-%m-%d %H:%M:%S %Z} "
            "(the worker running it stopped); nothing was found wrong with the ledger"
        ),
    )
    return True


def run_verification(
    pk: int,
    *,
    on_failure: Callable[[LedgerVerification], None] | None = None,
    redelivered: bool = False,
) -> LedgerVerification | None:
    """Claim the QUEUED run `pk` and verify the whole chain, then the latest checkpoint.

    Returns the finished run, or None when it was not QUEUED (already claimed or finished).
    `on_failure` runs inside the transaction that records a FAILED result (to notify people).
    `redelivered`: the worker that claimed the run died (its task was handed out again), so a
    RUNNING run is taken over and verified from the start.
    """
    total = LedgerHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0
    claimable = [LedgerVerification.Status.QUEUED]
    if redelivered:
        claimable.append(LedgerVerification.Status.RUNNING)
    claimed = LedgerVerification.objects.filter(pk=pk, status__in=claimable).update(
        status=LedgerVerification.Status.RUNNING,
        verified=0,
        started_at=timezone.now(),
        progressed_at=timezone.now(),
        total=total,
    )
    if not claimed:
        return None
    try:
        verified, problem = _verify_chain(pk, total)
        name, seq = "", None
        if problem is None:
            # The chain alone cannot show that entries were cut from its end; a checkpoint can.
            verdict = checkpoints.verify_checkpoints(verified)
            if verdict.problem:
                name = verdict.failed
                problem = f"against checkpoint {verdict.failed}: {verdict.problem}"
            elif verdict.latest:
                name, seq = verdict.latest.name, verdict.latest.checkpoint.seq
    except Exception as exc:
        # A run that cannot finish must not stay RUNNING: it would block every later run.
        LedgerVerification.objects.filter(pk=pk).update(
            status=LedgerVerification.Status.FAILED,
            finished_at=timezone.now(),
            problem=f"the run stopped with an error before finishing: {exc}",
        )
        raise
    return _finish(pk, verified, problem, name, seq, on_failure)


def _verify_chain(pk: int, total: int) -> tuple[int, str | None]:
    """Walk entries 1..total in keyset batches, recording progress every PROGRESS_EVERY
    entries with one UPDATE; (entries verified, the first problem or None)."""
    verified = 0
    entries = ledger.stored_entries(through=total)
    for result in ledger_format.verify_entries(entries, ledger.public_keys()):
        if isinstance(result, ledger_format.Problem):
            return verified, str(result)
        verified += 1
        if verified % PROGRESS_EVERY == 0:
            LedgerVerification.objects.filter(pk=pk).update(
                verified=verified, progressed_at=timezone.now()
            )
    if verified < total:
        missing = ledger_format.Problem(verified + 1, "entries from here on are missing")
        return verified, str(missing)
    return verified, None


def _finish(
    pk: int,
    verified: int,
    problem: str | None,
    checkpoint_name: str,
    checkpoint_seq: int | None,
    on_failure: Callable[[LedgerVerification], None] | None,
) -> LedgerVerification:
    status = LedgerVerification.Status.FAILED if problem else LedgerVerification.Status.PASSED
    with transaction.atomic():
        run = LedgerVerification.objects.select_for_update().get(pk=pk)
        run.status, run.verified, run.problem = status, verified, problem or ""
        run.checkpoint_name, run.checkpoint_seq = checkpoint_name or "", checkpoint_seq
        run.finished_at = run.progressed_at = timezone.now()
        run.save()
        if problem and on_failure:
            on_failure(run)
    if problem:
        logger.error("Ledger verification %s FAILED: %s", pk, problem)
    return run


def recent_runs(limit: int = 10):
    """The latest runs, newest first, with who asked for each."""
    return LedgerVerification.objects.select_related("requested_by").order_by(
        "-requested_at", "-pk"
    )[:limit]


def progress_percent(run: LedgerVerification) -> int:
    """How far a run has come, 0-100 (a finished run is 100)."""
    if run.status in (LedgerVerification.Status.PASSED, LedgerVerification.Status.FAILED):
        return 100
    return min(100, run.verified * 100 // run.total) if run.total else 0

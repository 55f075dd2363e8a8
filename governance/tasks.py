"""Timed governance work run by Celery beat."""

from celery import shared_task
from django.urls import reverse
from django.utils import timezone

from governance.authority import reviews
from governance.authority import selectors as authority
from governance.authority.models import AccessReview
from governance.authority.services import expire_role_grants
from governance.ledger import checkpoints, verification
from governance.ledger.models import LedgerVerification
from governance.notifications import outbox
from governance.notifications import services as notifications
from governance.people.models import User
from governance.redelivery import redelivered


@shared_task
def expire_role_grants_task() -> int:
    """Revoke role grants whose expiry has passed."""
    return expire_role_grants()


@shared_task
def start_access_review_task() -> int:
    """Open the quarterly access review campaign; returns its id. Run again the same day (the
    message redelivered after its worker died), it returns the campaign already opened."""
    today = timezone.now().date()
    opened = AccessReview.objects.filter(started_by=None, started_at__date=today).first()
    return (opened or reviews.start_access_review(actor=None)).pk


@shared_task
def deliver_notifications_task() -> int:
    """Deliver queued notifications (also run every minute to retry failures)."""
    return notifications.deliver_pending()


@shared_task
def deliver_outbox_task() -> int:
    """Send due outbox deliveries (also run every minute for retries); how many were sent."""
    return outbox.deliver_due()


@shared_task
def write_ledger_checkpoint_task() -> str | None:
    """Anchor the ledger's head in a new signed checkpoint file; None when the head has not moved.

    When the chain no longer extends the last checkpoint this raises CheckpointRefused, so the
    damage shows as a failed task in the worker's log instead of being anchored.
    """
    outcome = checkpoints.write_checkpoint()
    return outcome.stored.name if outcome.written and outcome.stored else None


@shared_task(bind=True)
def verify_ledger_task(self, verification_id: int) -> str | None:
    """Run the queued whole-ledger verification `verification_id`; its status, or None when it
    was already claimed by a live worker or finished. A run whose worker died is taken over."""
    run = verification.run_verification(
        verification_id, on_failure=_notify_verification_failed, redelivered=redelivered(self)
    )
    return run.status if run else None


@shared_task
def verify_ledger_nightly_task() -> int:
    """Start a whole-ledger verification run nobody asked for (beat, nightly); the id of the run
    now active (an earlier run still queued or running is not doubled)."""
    run, _ = verification.request_verification(actor=None, enqueue=verify_ledger_task.delay)
    return run.pk


def _notify_verification_failed(run: LedgerVerification) -> None:
    """Tell administrators and organisation-wide auditors that the ledger failed verification."""
    auditors = authority.auditor_grants().filter(
        service__isnull=True, team__isnull=True, user__is_active=True
    )
    people = authority.administrators() | User.objects.filter(pk__in=auditors.values("user_id"))
    notifications.notify(
        people=people.distinct(),
        subject="The evidence ledger FAILED verification",
        body=(
            f"The whole-ledger verification run of {run.requested_at:%Y-%m-%d %H:%M} UTC found "
            f"a problem after verifying {run.verified} of {run.total} entries: {run.problem}"
        ),
        url=reverse("reporting:ledger"),
        reason="administrator or auditor of the whole organisation",
    )

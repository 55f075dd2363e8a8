"""Timed governance work run by Celery beat."""

from celery import shared_task

from governance.authority import reviews
from governance.authority.services import expire_role_grants
from governance.ledger import checkpoints
from governance.notifications import events
from governance.notifications import services as notifications


@shared_task
def expire_role_grants_task() -> int:
    """Revoke role grants whose expiry has passed."""
    return expire_role_grants()


@shared_task
def start_access_review_task() -> int:
    """Open the quarterly access review campaign; returns its id."""
    return reviews.start_access_review(actor=None).pk


@shared_task
def deliver_notifications_task() -> int:
    """Deliver queued notifications (also run every minute to retry failures)."""
    return notifications.deliver_pending()


@shared_task
def deliver_events_task() -> int:
    """POST due outbound events to the configured webhooks (also run every minute for retries)."""
    return events.deliver_events()


@shared_task
def write_ledger_checkpoint_task() -> str | None:
    """Anchor the ledger's head in a new signed checkpoint file; None when the head has not moved.

    When the chain no longer extends the last checkpoint this raises CheckpointRefused, so the
    damage shows as a failed task in the worker's log instead of being anchored.
    """
    outcome = checkpoints.write_checkpoint()
    return outcome.stored.name if outcome.written and outcome.stored else None

"""Timed verification work: polling the health of deployments inside their window."""

from celery import shared_task

from approvals.verification.polling import verify_due


@shared_task
def verify_deployments_task() -> int:
    """Poll due deployments' health URLs and close finished windows; how many were handled.

    Beat runs it every 30 seconds; a second worker running it at the same time takes other
    deployments (or none), never the same ones."""
    return verify_due()

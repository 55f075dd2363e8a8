"""Timed verification work: polling the health of deployments inside their window."""

from celery import shared_task


@shared_task
def verify_deployments_task() -> int:
    """Poll due deployments' health URLs and close finished windows; how many were checked."""
    return 0

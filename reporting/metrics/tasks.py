"""The metrics' background work: beat refreshes the rollups every few minutes."""

from celery import shared_task

from reporting.metrics.rollups import refresh_metrics


@shared_task
def refresh_metrics_task(full: bool = False) -> int:
    """Rebuild the rollups of every release changed since the last run (all of them if `full`)."""
    return refresh_metrics(full=full)

"""The metrics' background work: beat refreshes the rollups every few minutes."""

from celery import shared_task
from django.core.cache import cache

from reporting.metrics.rollups import refresh_metrics

LOCK = "metrics-refresh-running"
# Longer than a full rebuild of 100,000 releases (about a minute); a crashed run's lock lapses.
LOCK_SECONDS = 15 * 60


@shared_task
def refresh_metrics_task(full: bool = False) -> int:
    """Rebuild the rollups of every release changed since the last run (all of them if `full`).

    One run at a time: two would rebuild the same releases and collide on their fact rows, so
    a run that finds another under way does nothing (the next beat picks up what it missed).
    """
    if not cache.add(LOCK, "1", timeout=LOCK_SECONDS):
        return 0
    try:
        return refresh_metrics(full=full)
    finally:
        cache.delete(LOCK)

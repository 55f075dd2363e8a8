"""Reporting's background work: long reports written by a worker."""

from celery import shared_task

from governance.redelivery import redelivered

# Celery's autodiscovery reads this module only: each concern's tasks are registered through it.
from reporting.anomalies.tasks import detect_anomalies_task  # noqa: F401
from reporting.compliance.exports import run_compliance_export
from reporting.lake.tasks import export_lake_task  # noqa: F401
from reporting.metrics.tasks import refresh_metrics_task  # noqa: F401
from reporting.reviews.tasks import start_quarterly_review_task  # noqa: F401


@shared_task(bind=True)
def compliance_export_task(self, export_id: int) -> str:
    """Write one queued compliance export (CSV or PDF) and record its progress; an export whose
    worker died mid-way is written again by the redelivered task, once."""
    return run_compliance_export(export_id, redelivered=redelivered(self))

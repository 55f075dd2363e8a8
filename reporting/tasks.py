"""Reporting's background work: long reports written by a worker."""

from celery import shared_task

from reporting.compliance.exports import run_compliance_export


@shared_task
def compliance_export_task(export_id: int) -> str:
    """Write one queued compliance export (CSV or PDF) and record its progress."""
    return run_compliance_export(export_id)

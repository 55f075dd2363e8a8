"""Asking for a compliance report to be written in the background."""

from __future__ import annotations

from django.db import transaction

from governance.models import User
from reporting.compliance.report import ReportQuery
from reporting.models import ReportExport
from reporting.tasks import compliance_export_task

# Periods up to this long are answered at once; longer ones are written in the background.
LONGEST_DIRECT_DAYS = 31


def queue_compliance_export(*, query: ReportQuery, format: str, actor: User) -> ReportExport:
    """Record the export and enqueue the task that writes it once the row is committed."""
    with transaction.atomic():
        export = ReportExport.objects.create(
            requested_by=actor,
            kind=ReportExport.Kind.COMPLIANCE,
            format=format,
            parameters=query.as_parameters(),
        )
        transaction.on_commit(lambda: compliance_export_task.delay(export.pk))
    return export

"""Long compliance reports, written by a worker batch by batch with their progress on the
ReportExport row; the file is kept in the default storage (under MEDIA_ROOT/reports/)."""

from __future__ import annotations

import logging
import tempfile

from django.core.files import File
from django.core.files.base import ContentFile
from django.utils import timezone

from reporting.compliance.formats import compliance_pdf, csv_lines
from reporting.compliance.report import ComplianceReport, ReportQuery
from reporting.models import ReportExport

logger = logging.getLogger(__name__)


def run_compliance_export(export_id: int, *, redelivered: bool = False) -> str:
    """Write the export's file. Claimed with a conditional update, so a task delivered twice
    writes it once; a failure is recorded on the row with its reason.

    `redelivered`: the broker handed the task out again because the worker running it died
    before finishing (tasks are acknowledged late). That worker's RUNNING claim is then taken
    over and the file written from the start; a finished export is left as it is.
    """
    claimable = [ReportExport.Status.QUEUED]
    if redelivered:
        claimable.append(ReportExport.Status.RUNNING)
    claimed = ReportExport.objects.filter(pk=export_id, status__in=claimable).update(
        status=ReportExport.Status.RUNNING, rows_done=0
    )
    if not claimed:
        return "not queued"
    export = ReportExport.objects.select_related("requested_by").get(pk=export_id)
    try:
        report = ComplianceReport(
            ReportQuery.from_parameters(export.parameters), export.requested_by
        )
        ReportExport.objects.filter(pk=export.pk).update(rows_total=report.count())
        writer = _write_pdf if export.format == ReportExport.Format.PDF else _write_csv
        writer(export, report, f"{file_stem(report.query)}.{export.format}")
    except Exception as exc:  # the row says it failed; the worker log keeps the trace
        logger.exception("Compliance export %s failed", export_id)
        ReportExport.objects.filter(pk=export_id).update(
            status=ReportExport.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        return "failed"
    return "done"


def file_stem(query: ReportQuery) -> str:
    """ "compliance-sox-20261101-20261130": the download's name without its extension."""
    return f"compliance-{query.framework.lower()}-{query.start:%Y%m%d}-{query.end:%Y%m%d}"


def _progress(export: ReportExport, rows_done: int) -> None:
    ReportExport.objects.filter(pk=export.pk).update(rows_done=rows_done)


def _counted(export: ReportExport, report: ComplianceReport):
    """The report's batches, recording the rows written after each."""
    done = 0
    for batch in report.batches():
        yield batch
        done += len(batch)
        _progress(export, done)


def _write_csv(export: ReportExport, report: ComplianceReport, name: str) -> None:
    # A temporary file on disk, not memory: a long period may hold millions of rows.
    with tempfile.TemporaryFile(mode="w+b") as spool:
        for line in csv_lines(_counted(export, report)):
            spool.write(line.encode())
        spool.seek(0)
        _finish(export, File(spool, name=name))


def _write_pdf(export: ReportExport, report: ComplianceReport, name: str) -> None:
    rows = [row for batch in _counted(export, report) for row in batch]
    who = f"{export.requested_by.display_name} ({export.requested_by.username})"
    pdf = compliance_pdf(report.query, rows, report.summary, who, timezone.now())
    _finish(export, ContentFile(pdf, name=name))


def _finish(export: ReportExport, content: File) -> None:
    export.file.save(content.name, content, save=False)
    ReportExport.objects.filter(pk=export.pk).update(
        file=export.file.name, status=ReportExport.Status.DONE, finished_at=timezone.now()
    )

"""Compliance reports for auditors: a form page, the CSV and PDF downloads, and the page of an
export written in the background (a period longer than 31 days)."""

from __future__ import annotations

import os
from datetime import timedelta

from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from governance.models import Service
from reporting.access import auditor_required
from reporting.compliance.exports import file_stem
from reporting.compliance.formats import compliance_pdf, csv_lines
from reporting.compliance.report import ComplianceReport, parse_query
from reporting.compliance.services import LONGEST_DIRECT_DAYS, queue_compliance_export
from reporting.models import ReportExport

RECENT_EXPORTS = 10


def _by_token(request: HttpRequest) -> bool:
    """The request authenticated with a bearer token (auditor_required checked it): a script,
    which gets JSON answers instead of pages."""
    return bool(request.headers.get("Authorization"))


@auditor_required
@require_GET
def compliance_form(request: HttpRequest) -> HttpResponse:
    """Pick a framework and a period, then download the CSV or the PDF."""
    return _form_page(request)


def _form_page(request: HttpRequest, error: str = "", status: int = 200) -> HttpResponse:
    today = timezone.now().date()
    values = {
        "framework": (request.GET.get("framework") or "SOX").upper(),
        "from": request.GET.get("from") or (today - timedelta(days=30)).isoformat(),
        "to": request.GET.get("to") or today.isoformat(),
    }
    context = {
        "nav_section": "reports",
        "frameworks": Service.ComplianceFramework.choices,
        "values": values,
        "error": error,
        "longest_direct_days": LONGEST_DIRECT_DAYS,
        "exports": ReportExport.objects.filter(requested_by=request.user)[:RECENT_EXPORTS],
    }
    return render(request, "reporting/compliance/form.html", context, status=status)


@auditor_required
@require_GET
def compliance_csv(request: HttpRequest) -> HttpResponse:
    """The report as CSV, streamed batch by batch (a long period is written in the background)."""
    return _report(request, ReportExport.Format.CSV)


@auditor_required
@require_GET
def compliance_pdf_view(request: HttpRequest) -> HttpResponse:
    """The report as a landscape A4 PDF with its summary figures on top."""
    return _report(request, ReportExport.Format.PDF)


def _report(request: HttpRequest, format: str) -> HttpResponse:
    try:
        query = parse_query(request.GET)
    except ValueError as exc:
        return _bad_input(request, str(exc))
    if query.days > LONGEST_DIRECT_DAYS:
        export = queue_compliance_export(query=query, format=format, actor=request.user)
        return _queued(request, export)
    report = ComplianceReport(query, request.user)
    filename = f"{file_stem(query)}.{format}"
    if format == ReportExport.Format.CSV:
        response = StreamingHttpResponse(
            csv_lines(report.batches()), content_type="text/csv; charset=utf-8"
        )
    else:
        rows = list(report.rows())
        who = f"{request.user.display_name} ({request.user.username})"
        pdf = compliance_pdf(query, rows, report.summary, who, timezone.now())
        response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _bad_input(request: HttpRequest, message: str) -> HttpResponse:
    if _by_token(request):
        error = {"code": "invalid_parameters", "message": message}
        return JsonResponse({"error": error}, status=400)
    return _form_page(request, error=message, status=400)


def _queued(request: HttpRequest, export: ReportExport) -> HttpResponse:
    status_url = reverse("reporting:export", args=[export.pk])
    if not _by_token(request):
        return redirect(status_url)
    return JsonResponse(_export_json(request, export), status=202)


def _export_json(request: HttpRequest, export: ReportExport) -> dict:
    done = export.status == ReportExport.Status.DONE
    download = reverse("reporting:export_download", args=[export.pk])
    return {
        "id": export.pk,
        "status": export.status,
        "format": export.format,
        "parameters": export.parameters,
        "rows_done": export.rows_done,
        "rows_total": export.rows_total,
        "error": export.error,
        "status_url": request.build_absolute_uri(reverse("reporting:export", args=[export.pk])),
        "url": request.build_absolute_uri(download),
        "ready": done,
    }


@auditor_required
@require_GET
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An export's progress (the page polls its partial every 2 s) and, once done, its link."""
    export = get_object_or_404(ReportExport, pk=pk, requested_by=request.user)
    if _by_token(request):
        return JsonResponse(_export_json(request, export))
    context = {"export": export, "nav_section": "reports"}
    if request.headers.get("HX-Request"):
        return render(request, "reporting/compliance/partials/_export_progress.html", context)
    return render(request, "reporting/compliance/export.html", context)


@auditor_required
@require_GET
def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The finished file; 409 while it is still being written (or when writing failed)."""
    export = get_object_or_404(ReportExport, pk=pk, requested_by=request.user)
    if export.status != ReportExport.Status.DONE or not export.file:
        message = f"The export is {export.get_status_display().lower()}; it has no file yet."
        if _by_token(request):
            return JsonResponse({"error": {"code": "not_ready", "message": message}}, status=409)
        return HttpResponse(message, status=409, content_type="text/plain; charset=utf-8")
    name = os.path.basename(export.file.name)
    return FileResponse(export.file.open("rb"), as_attachment=True, filename=name)

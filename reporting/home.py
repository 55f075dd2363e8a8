"""The auditor's home: compliance reports, evidence packs, the audit trail and the ledger."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reporting.access import auditor_required


@auditor_required
@require_GET
def reports_home(request: HttpRequest) -> HttpResponse:
    return render(request, "reporting/home.html")

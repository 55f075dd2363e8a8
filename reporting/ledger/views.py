"""The ledger for auditors: the export, its public keys, the offline verifier, and a page that
shows the chain's state and runs the whole-ledger verification in the background."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from governance import tasks
from governance.ledger import export, verification
from governance.ledger.models import LedgerVerification
from reporting.access import auditor_required
from reporting.ledger import selectors

VERIFIER_PATH = settings.BASE_DIR / "tools" / "verify_ledger.py"


@auditor_required(organisation_wide=True)
@require_GET
def ledger_export(request: HttpRequest) -> StreamingHttpResponse:
    """The whole ledger as JSON lines, streamed: a header, then one signed entry a line."""
    response = StreamingHttpResponse(
        export.export_chunks(), content_type="application/x-ndjson; charset=utf-8"
    )
    response["Content-Disposition"] = f"attachment; filename={export.export_file_name()}"
    return response


@auditor_required
@require_GET
def ledger_public_key(request: HttpRequest) -> HttpResponse:
    """The ledger's current public key then its retired ones, as PEM."""
    response = HttpResponse(export.public_keys_pem(), content_type="application/x-pem-file")
    response["Content-Disposition"] = "inline; filename=signoff-ledger.pem"
    return response


@auditor_required
@require_GET
def ledger_verifier(request: HttpRequest) -> FileResponse:
    """tools/verify_ledger.py, the self-contained offline verifier."""
    return FileResponse(
        VERIFIER_PATH.open("rb"),
        as_attachment=True,
        filename="verify_ledger.py",
        content_type="text/x-python",
    )


@auditor_required(organisation_wide=True)
@require_GET
def ledger_page(request: HttpRequest) -> HttpResponse:
    page = selectors.ledger_page(
        absolute=request.build_absolute_uri, runs=verification.recent_runs()
    )
    return render(request, "reporting/ledger/ledger.html", {"page": page, "nav_section": "reports"})


@auditor_required(organisation_wide=True)
@require_POST
def ledger_verify(request: HttpRequest) -> HttpResponse:
    """Start a whole-ledger verification run, unless one is already queued or running."""
    run, started = verification.request_verification(
        actor=request.user, enqueue=tasks.verify_ledger_task.delay
    )
    if started:
        messages.success(request, "Verification of the whole ledger started.")
    else:
        messages.info(request, "A verification is already under way; here is its progress.")
    return redirect(f"{reverse('reporting:ledger')}#verification-{run.pk}")


@auditor_required(organisation_wide=True)
@require_GET
def ledger_verification(request: HttpRequest, pk: int) -> HttpResponse:
    """One run's progress (the fragment the page polls every 2 s while it runs)."""
    run = get_object_or_404(LedgerVerification.objects.select_related("requested_by"), pk=pk)
    return render(
        request,
        "reporting/ledger/partials/_verification.html",
        {"run": selectors.run_row(run)},
    )

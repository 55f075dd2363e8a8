"""The auditor's home: compliance reports, evidence packs, the audit trail and the ledger with its
verification status and latest checkpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from approvals.models import Release
from governance.ledger import checkpoints
from governance.ledger.models import LedgerHead, LedgerVerification
from governance.models import Service
from reporting.access import auditor_required, is_organisation_auditor

RECENT_RELEASES = 8


@auditor_required
@require_GET
def reports_home(request: HttpRequest) -> HttpResponse:
    whole = is_organisation_auditor(request.user)
    context = {
        "organisation_wide": whole,
        "frameworks": Service.ComplianceFramework.choices,
        "recent_releases": (
            Release.objects.restrict(request.user)
            .filter(environment__regulated=True)
            .with_list_related()
            .order_by("-created_at", "-pk")[:RECENT_RELEASES]
        ),
    }
    if whole:
        context.update(_ledger_status())
    return render(request, "reporting/home.html", context)


def _ledger_status() -> dict:
    """The head, the last verification run and the latest checkpoint (read from its store)."""
    head = LedgerHead.objects.filter(pk=1).first()
    latest = None
    names = checkpoints.checkpoint_names()
    if names:
        try:
            latest = checkpoints.load_checkpoint(names[-1])
        except ValueError:
            latest = None  # the ledger page names the broken file; here it is simply unknown
    return {
        "head": head,
        "last_run": LedgerVerification.objects.select_related("requested_by").first(),
        "latest_checkpoint": latest,
        "checkpoint_unreadable": bool(names) and latest is None,
    }

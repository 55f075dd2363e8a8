"""The auditor's home: compliance reports, evidence packs, the audit trail and the ledger with its
verification status and latest checkpoint."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from approvals.models import Release
from governance.ledger import checkpoints
from governance.ledger.models import LedgerEntry, LedgerHead, LedgerVerification
from governance.models import Service
from reporting.access import auditor_required, is_organisation_auditor

RECENT_RELEASES = 8
RECENT_EVENTS = 6
DEFAULT_PERIOD = timedelta(days=30)


@auditor_required
@require_GET
def reports_home(request: HttpRequest) -> HttpResponse:
    whole = is_organisation_auditor(request.user)
    today = timezone.now().date()
    context = {
        "organisation_wide": whole,
        "frameworks": Service.ComplianceFramework.values,
        "period": (today - DEFAULT_PERIOD, today),
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
        "recent_events": LedgerEntry.objects.order_by("-seq").values(
            "seq", "recorded_at", "kind", "subject", "actor"
        )[:RECENT_EVENTS],
        "last_run": LedgerVerification.objects.select_related("requested_by").first(),
        "latest_checkpoint": latest,
        "checkpoint_unreadable": bool(names) and latest is None,
    }

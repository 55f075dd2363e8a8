"""The alerts page: what the detectors raised, the evidence behind each, and acknowledging.

Security approvers of the whole organisation and administrators see and acknowledge alerts;
auditors of the whole organisation read them. Everyone else gets 403: the page exists, it is
just not theirs.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from governance.exceptions import GovernanceError
from reporting.anomalies import services
from reporting.anomalies.detectors import hours_label
from reporting.anomalies.forms import AcknowledgeForm, AlertFilterForm
from reporting.anomalies.models import AnomalyAlert

PAGE_SIZE = 20
# The numbers a detector keeps beside the decisions, in the words and order the page uses.
FACTS = {
    "threshold_seconds": "Threshold (seconds)",
    "time_zone": "Time zone",
    "usual_hours": "Usual hours",
    "baseline_decisions": "Decisions in the baseline",
    "today": "Decisions today",
    "mean": "Daily mean",
    "sd": "Standard deviation",
    "limit": "Limit",
    "total": "Decisions in the window",
    "new": "New",
}


def _require_viewer(user) -> bool:
    """403 unless `user` may see alerts; returns whether they may also acknowledge them."""
    roles = services.organisation_roles(user)
    if not services.may_view(user, roles):
        raise PermissionDenied(
            "Anomaly alerts are for security approvers, administrators and auditors."
        )
    return services.may_acknowledge(user, roles)


@login_required
@require_GET
def anomaly_list(request: HttpRequest) -> HttpResponse:
    """Alerts (open first by default), filtered by status and kind, newest first."""
    can_acknowledge = _require_viewer(request.user)
    form = AlertFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "reporting/anomalies/list.html", {"form": form}, status=400)
    page = Paginator(form.filter(AnomalyAlert.objects.with_list_related()), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    mine = services.team_ids(request.user) if can_acknowledge else set()
    context = {
        "form": form,
        "page": page,
        "alerts": [_shown(alert, request.user, can_acknowledge, mine) for alert in page],
        "open_by_kind": _open_by_kind(),
    }
    return render(request, "reporting/anomalies/list.html", context)


def _shown(alert: AnomalyAlert, user, can_acknowledge: bool, mine: set[int]) -> dict:
    """One alert as the page shows it: the decisions behind it and whether it may be acked."""
    evidence = dict(alert.evidence)
    # Times travel as ISO text in the JSON; the page shows them as dates in the viewer's zone.
    decisions = [
        {**row, "at": datetime.fromisoformat(row["at"])} for row in evidence.pop("decisions", [])
    ]
    return {
        "alert": alert,
        "decisions": decisions,
        "facts": [
            (label, _fact(key, evidence[key])) for key, label in FACTS.items() if key in evidence
        ],
        "acknowledgeable": can_acknowledge
        and alert.status == AnomalyAlert.Status.OPEN
        and not alert.concerns(user, mine),
        "about_me": alert.concerns(user, mine),
    }


def _fact(key: str, value) -> str:
    if key == "usual_hours":
        return hours_label(set(value))
    if key == "new":
        return " and ".join(value)
    return str(value)


def _open_by_kind() -> list[dict]:
    """Open alerts per kind, every kind listed (zeros too)."""
    counts = dict(
        AnomalyAlert.objects.open().values_list("kind").annotate(n=Count("pk")).order_by()
    )
    return [
        {"kind": value, "label": label, "count": counts.get(value, 0)}
        for value, label in AnomalyAlert.Kind.choices
    ]


@login_required
@require_POST
def anomaly_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """Acknowledge one alert with a required note; back to the list with what happened."""
    _require_viewer(request.user)
    alert = get_object_or_404(AnomalyAlert, pk=pk)
    form = AcknowledgeForm(request.POST)
    back = reverse("reporting:anomaly_list") + f"#anomaly-{alert.pk}"
    if not form.is_valid():
        messages.error(request, "A note is required to acknowledge an alert.")
        return redirect(back)
    try:
        services.acknowledge_alert(alert=alert, actor=request.user, **form.cleaned_data)
    except GovernanceError as exc:
        status = 403 if exc.status == 403 else 409
        return render(request, "reporting/anomalies/refused.html", {"error": exc}, status=status)
    messages.success(request, f"Acknowledged: {alert.summary}")
    return redirect(back)

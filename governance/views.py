"""Governance pages (delegations) and the operational endpoints (liveness, readiness)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance import services
from governance.exceptions import GovernanceError
from governance.forms import DelegationForm
from governance.models import Delegation


@login_required
@require_http_methods(["GET", "POST"])
def delegations(request: HttpRequest) -> HttpResponse:
    """My delegations, given and received, and a form to lend my authority while I am away."""
    form = DelegationForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            services.create_delegation(
                delegator=request.user, actor=request.user, **form.cleaned_data
            )
        except GovernanceError as exc:
            for field, errors in exc.fields.items():
                form.add_error(field if field in form.fields else None, errors)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            messages.success(request, "Delegation saved.")
            return redirect("governance:delegation_list")
    mine = Delegation.objects.filter(Q(delegator=request.user) | Q(delegate=request.user))
    context = {
        "form": form,
        "now": timezone.now(),
        "delegations": mine.select_related("delegator", "delegate", "service")[:100],
    }
    return render(
        request, "governance/delegations.html", context, status=400 if form.errors else 200
    )


@login_required
@require_POST
def delegation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """The delegator ends their delegation early."""
    delegation = get_object_or_404(Delegation, pk=pk, delegator=request.user)
    services.revoke_delegation(delegation=delegation, actor=request.user, reason="Ended early")
    messages.success(request, f"Delegation to {delegation.delegate.username} ended.")
    return redirect("governance:delegation_list")


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database answers and the broker accepts a connection."""
    from config.celery import app

    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )

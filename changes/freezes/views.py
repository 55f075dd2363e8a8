"""Freeze pages, administrators only: list, create, edit, end early, confirm an override."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from changes.freezes import selectors
from changes.freezes import services as freezes
from changes.freezes.forms import EndFreezeForm, FreezeForm
from changes.freezes.models import Freeze, FreezeOverride
from governance.authority.decorators import administrator_required
from governance.exceptions import GovernanceError
from governance.forms import form_errors_from

PAGE_SIZE = 50
SOON = timedelta(days=92)  # how far ahead a freeze's page lists its occurrences


@administrator_required
@require_GET
def freeze_list(request: HttpRequest) -> HttpResponse:
    """Every freeze with its state now, and the overrides waiting for a second administrator."""
    now = timezone.now()
    rows = Freeze.objects.with_list_related().order_by("-starts_at", "-pk")
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": selectors.freeze_rows(page, now),
        "pending": selectors.pending_overrides(now),
    }
    return render(request, "changes/freezes/freeze_list.html", context)


@administrator_required
@require_GET
def freeze_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One freeze: scope, rule, its next occurrences and its overrides."""
    freeze = get_object_or_404(Freeze.objects.with_list_related(), pk=pk)
    now = timezone.now()
    context = {
        "freeze": freeze,
        "row": selectors.freeze_rows([freeze], now)[0],
        "occurrences": [
            freeze.window_label(start, end)
            for start, end in freeze.occurrences_between(now, now + SOON)[:10]
        ]
        if not freeze.ended_at
        else [],
        "overrides": freeze.overrides.select_related("requested_by", "confirmed_by"),
        "end_form": EndFreezeForm(),
        "now": now,
    }
    return render(request, "changes/freezes/freeze_detail.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def freeze_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Create a freeze, or edit one that has not ended."""
    freeze = get_object_or_404(Freeze, pk=pk) if pk else None
    initial = FreezeForm.initial_for(freeze) if freeze else None
    form = FreezeForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if freeze:
                freeze = freezes.update_freeze(
                    freeze=freeze, data=form.to_input(), actor=request.user
                )
            else:
                freeze = freezes.create_freeze(data=form.to_input(), actor=request.user)
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Freeze '{freeze.name}' saved.")
            return redirect("changes:freeze_detail", pk=freeze.pk)
    return render(
        request,
        "changes/freezes/freeze_edit.html",
        {"form": form, "freeze": freeze},
        status=400 if form.errors else 200,
    )


@administrator_required
@require_POST
def freeze_end(request: HttpRequest, pk: int) -> HttpResponse:
    """End a freeze early, with a reason."""
    freeze = get_object_or_404(Freeze, pk=pk)
    form = EndFreezeForm(request.POST)
    if form.is_valid():
        try:
            freezes.end_freeze(
                freeze=freeze, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except GovernanceError as exc:
            messages.error(request, exc.message)
            return redirect("changes:freeze_detail", pk=freeze.pk)
        messages.success(request, f"Freeze '{freeze.name}' ended.")
        return redirect("changes:freeze_detail", pk=freeze.pk)
    messages.error(request, "Give a reason to end the freeze early.")
    return redirect("changes:freeze_detail", pk=freeze.pk)


@administrator_required
@require_POST
def override_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm another administrator's override; back to where the button was."""
    override = get_object_or_404(FreezeOverride.objects.select_related("freeze"), pk=pk)
    try:
        freezes.confirm_override(override=override, actor=request.user)
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Override for {override.release_label} confirmed.")
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect("changes:freeze_detail", pk=override.freeze_id)

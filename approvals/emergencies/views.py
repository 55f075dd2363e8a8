"""Emergency pages: the list, the declaration form, one emergency (end it early, review it)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.change_releases import linked_release_rows
from approvals.emergencies import selectors
from approvals.emergencies import services as emergencies
from approvals.emergencies.forms import DeclareForm, EmergencyFilterForm, EndForm, ReviewForm
from approvals.emergencies.models import EmergencyException
from changes.incidents.models import Incident
from governance.authority.selectors import has_stage_authority
from governance.exceptions import GovernanceError
from governance.forms import form_errors_from
from governance.models import Service

PAGE_SIZE = 25


@login_required
@require_GET
def emergency_list(request: HttpRequest) -> HttpResponse:
    """Emergencies on the services a person may see: in force first, filtered, paginated."""
    now = timezone.now()
    form = EmergencyFilterForm(request.GET or None)
    rows = selectors.with_list_related(selectors.emergencies_visible_to(request.user), now)
    if form.is_valid():
        rows = selectors.search_emergencies(
            rows, selectors.EmergencyFilters(**form.cleaned_data), now
        )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "form": form,
        "services": Service.objects.restrict(request.user, "view").order_by("name"),
        "may_declare": selectors.declarable_services(request.user).exists(),
        "now": now,
    }
    return render(request, "approvals/emergencies/emergency_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def emergency_declare(request: HttpRequest) -> HttpResponse:
    """Declare an emergency on a service one is a release manager of (or as administrator)."""
    services = selectors.declarable_services(request.user)
    if not services.exists():
        raise Http404("No service you may declare an emergency on.")
    settings = emergencies.policy_emergency_settings()
    form = DeclareForm(
        request.POST or None,
        services=services,
        incidents=_open_incidents(services),
        settings=settings,
        initial={"service": request.GET.get("service")},
    )
    if request.method == "POST" and form.is_valid():
        try:
            emergency = emergencies.declare_emergency(actor=request.user, **form.cleaned_data)
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(
                request,
                f"Emergency declared: {emergency.change.ref} holds an exception until "
                f"{emergency.ends_at:%Y-%m-%d %H:%M} UTC.",
            )
            return redirect("emergencies:emergency_detail", pk=emergency.pk)
    return render(
        request,
        "approvals/emergencies/emergency_declare.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


def _open_incidents(services):
    dependencies = Service.depends_on.through.objects.filter(from_service__in=services)
    return (
        Incident.objects.open()
        .filter(Q(services__in=services) | Q(services__in=dependencies.values("to_service_id")))
        .distinct()
        .order_by("-opened_at", "-pk")
    )


@login_required
@require_GET
def emergency_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One emergency: its exception, controls, review, and its change's releases with gates."""
    emergency = _visible_or_404(request, pk)
    return render(
        request, "approvals/emergencies/emergency_detail.html", _detail_context(request, emergency)
    )


def _detail_context(request: HttpRequest, emergency: EmergencyException, **forms) -> dict:
    now = timezone.now()
    user = request.user
    may_review = (
        not emergency.secondary_review
        and user.pk not in (emergency.declared_by_id, emergency.change.author_id)
        and has_stage_authority(user, emergency.service, "cab")
    )
    may_end = emergency.ends_at > now and selectors.may_end(user, emergency)
    return {
        "emergency": emergency,
        "window": selectors.window(emergency, user.time_zone, now),
        "controls": selectors.control_rows(emergency),
        "releases": linked_release_rows(emergency.change, user),
        "post_mortem": selectors.post_mortem(emergency),
        "end_form": forms.get("end_form", EndForm()) if may_end else None,
        "review_form": forms.get("review_form", ReviewForm()) if may_review else None,
    }


@login_required
@require_POST
def emergency_end(request: HttpRequest, pk: int) -> HttpResponse:
    """End the exception now: the change's releases take the normal path from here."""
    emergency = _visible_or_404(request, pk)
    if not selectors.may_end(request.user, emergency):
        raise Http404("No emergency you may end here.")
    form = EndForm(request.POST)
    if form.is_valid():
        try:
            emergencies.end_emergency(
                emergency=emergency, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"The emergency exception for {emergency.change.ref} ended.")
            return redirect("emergencies:emergency_detail", pk=pk)
    context = _detail_context(request, emergency, end_form=form)
    return render(request, "approvals/emergencies/emergency_detail.html", context, status=400)


@login_required
@require_POST
def emergency_review(request: HttpRequest, pk: int) -> HttpResponse:
    """Record the CAB's secondary review (a CAB member of the service, neither the declarer nor
    the change's author)."""
    emergency = _visible_or_404(request, pk)
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            emergencies.record_secondary_review(
                emergency=emergency, actor=request.user, **form.cleaned_data
            )
        except GovernanceError as exc:
            if exc.status == 403:
                raise Http404(exc.message) from None
            form_errors_from(form, exc)
        else:
            messages.success(request, "The CAB's secondary review is recorded.")
            return redirect("emergencies:emergency_detail", pk=pk)
    context = _detail_context(request, emergency, review_form=form)
    context["review_form"] = form
    return render(request, "approvals/emergencies/emergency_detail.html", context, status=400)


def _visible_or_404(request: HttpRequest, pk: int) -> EmergencyException:
    emergencies_seen = selectors.emergencies_visible_to(request.user).select_related(
        "change", "service", "declared_by", "incident", "reviewed_by"
    )
    return get_object_or_404(emergencies_seen, pk=pk)

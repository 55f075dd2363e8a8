"""Authority pages: role grants, delegations and access reviews."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance.authority import reviews
from governance.authority.decorators import administrator_required
from governance.authority.forms import (
    AccessReviewCertifyForm,
    DelegationForm,
    RoleFilterForm,
    RoleGrantForm,
)
from governance.authority.models import AccessReview, AccessReviewItem, Delegation, RoleAssignment
from governance.authority.services import (
    create_delegation,
    grant_role,
    is_administrator,
    revoke_delegation,
    revoke_role,
)
from governance.exceptions import GovernanceError
from governance.forms import ReasonForm, form_errors_from
from governance.ledger.models import LedgerEntry

PAGE_SIZE = 50


@administrator_required
@require_http_methods(["GET", "POST"])
def roles(request: HttpRequest) -> HttpResponse:
    """Who holds which role where: search, filter, grant, revoke, and the recent history."""
    form = RoleGrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            grant_role(actor=request.user, **form.cleaned_data)
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Role granted.")
            return redirect("governance:role_list")
    filters = RoleFilterForm(request.GET or None)
    assignments = RoleAssignment.objects.select_related(
        "user", "service", "team", "environment", "granted_by"
    )
    if filters.is_valid():
        assignments = _filter_roles(assignments, filters.cleaned_data)
    page = Paginator(assignments.order_by("user__username", "role", "pk"), PAGE_SIZE)
    history = LedgerEntry.objects.filter(kind__in=["role.granted", "role.revoked"]).order_by("-seq")
    context = {
        "form": form,
        "filters": filters,
        "history": history[:15],
        "page": page.get_page(request.GET.get("page")),
    }
    return render(
        request, "governance/authority/roles.html", context, status=400 if form.errors else 200
    )


def _filter_roles(assignments, data: dict):
    if data.get("q"):
        text = data["q"]
        assignments = assignments.filter(
            Q(user__username__icontains=text)
            | Q(user__first_name__icontains=text)
            | Q(user__last_name__icontains=text)
            | Q(reason__icontains=text)
        )
    if data.get("role"):
        assignments = assignments.filter(role=data["role"])
    if data.get("service"):
        assignments = assignments.filter(service=data["service"])
    return assignments


@administrator_required
@require_POST
def role_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    assignment = get_object_or_404(RoleAssignment.objects.select_related("user", "service"), pk=pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A reason is required to revoke a role.")
        return redirect("governance:role_list")
    try:
        revoke_role(assignment=assignment, actor=request.user, **form.cleaned_data)
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Revoked {assignment.get_role_display()} from {assignment.user}."
        )
    return redirect("governance:role_list")


@login_required
@require_http_methods(["GET", "POST"])
def delegations(request: HttpRequest) -> HttpResponse:
    """My delegations, given and received, and a form to lend my authority while I am away."""
    admin = is_administrator(request.user)
    form = DelegationForm(request.POST or None, user=request.user, for_anyone=admin)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        delegator = data.pop("delegator", request.user)
        try:
            create_delegation(delegator=delegator, actor=request.user, **data)
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Delegation saved.")
            return redirect("governance:delegation_list")
    mine = Delegation.objects.all()
    if not admin:
        mine = mine.filter(Q(delegator=request.user) | Q(delegate=request.user))
    context = {
        "form": form,
        "now": timezone.now(),
        "delegations": mine.select_related("delegator", "delegate", "service")[:100],
        "admin": admin,
    }
    return render(
        request,
        "governance/authority/delegations.html",
        context,
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def delegation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """The delegator ends their delegation early."""
    delegations = Delegation.objects.all()
    if not is_administrator(request.user):
        delegations = delegations.filter(delegator=request.user)  # the delegator ends their own
    delegation = get_object_or_404(delegations, pk=pk)
    revoke_delegation(delegation=delegation, actor=request.user, reason="Ended early")
    messages.success(request, f"Delegation to {delegation.delegate.username} ended.")
    return redirect("governance:delegation_list")


def _reviewer(user) -> bool:
    return is_administrator(user) or user.owned_services.exists()


@login_required
@require_http_methods(["GET", "POST"])
def access_reviews(request: HttpRequest) -> HttpResponse:
    """Campaigns; administrators start one here (Celery beat opens one each quarter)."""
    if not _reviewer(request.user):
        raise PermissionDenied
    if request.method == "POST":
        try:
            review = reviews.start_access_review(actor=request.user)
        except GovernanceError as exc:
            messages.error(request, exc.message)
            return redirect("governance:access_review_list")
        return redirect("governance:access_review_detail", pk=review.pk)
    campaigns = AccessReview.objects.annotate(
        grants=Count("items"),
        pending=Count("items", filter=Q(items__outcome=AccessReviewItem.Outcome.PENDING)),
        revoked=Count("items", filter=Q(items__outcome=AccessReviewItem.Outcome.REVOKE)),
    )[:20]
    return render(
        request,
        "governance/authority/access_reviews.html",
        {"campaigns": campaigns, "can_start": is_administrator(request.user)},
    )


@login_required
@require_GET
def access_review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    if not _reviewer(request.user):
        raise PermissionDenied
    review = get_object_or_404(AccessReview, pk=pk)
    items = reviews.items_for(request.user, review)
    finding, outcome = request.GET.get("finding", ""), request.GET.get("outcome", "")
    if finding in FINDING_LABELS:
        items = items.filter(finding_codes__contains=f",{finding},")
    if outcome in AccessReviewItem.Outcome.values:
        items = items.filter(outcome=outcome)
    page = Paginator(items.order_by("user__username", "role", "pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    page.object_list = reviews.mark_certifiable(request.user, list(page.object_list))
    context = {
        "review": review,
        "page": page,
        "finding": finding,
        "outcome": outcome,
        "finding_codes": FINDING_LABELS,
        "selectable": any(item.can_certify for item in page.object_list),
    }
    return render(request, "governance/authority/access_review_detail.html", context)


FINDING_LABELS = dict(AccessReviewItem.Finding.choices)


@login_required
@require_POST
def access_review_certify_many(request: HttpRequest, pk: int) -> HttpResponse:
    """Keep or revoke the selected grants with one reason: all of them, or none."""
    if not _reviewer(request.user):
        raise PermissionDenied
    review = get_object_or_404(AccessReview, pk=pk)
    form = AccessReviewCertifyForm(request.POST, items=reviews.items_for(request.user, review))
    if not form.is_valid():
        errors = [error for field in form.errors.values() for error in field]
        messages.error(request, " ".join([*errors, "Nothing was recorded."]))
    else:
        try:
            done = reviews.certify_many(actor=request.user, **form.cleaned_data)
        except GovernanceError as exc:
            messages.error(request, exc.message)
        else:
            outcome = AccessReviewItem.Outcome(form.cleaned_data["outcome"]).label
            messages.success(request, f"{outcome} {len(done)} grant{pluralize(len(done))}.")
    # Back to the same filters and page, which the form's address carries.
    kept = {key: request.GET[key] for key in ("finding", "outcome", "page") if request.GET.get(key)}
    url = reverse("governance:access_review_detail", args=[review.pk])
    return redirect(f"{url}?{urlencode(kept)}" if kept else url)


@login_required
@require_GET
def access_review_export(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The campaign's result as CSV, streamed so its size never matters. The same people as
    the page, each getting the grants the page shows them: a global role that only reads
    releases (CAB, security, a pipeline) is no reason to read everyone's grants."""
    if not _reviewer(request.user):
        raise PermissionDenied
    review = get_object_or_404(AccessReview, pk=pk)
    writer = csv.writer(_Echo())
    rows = reviews.csv_rows(request.user, review)
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="access-review-{review.pk}.csv"'
    return response


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


# --- Sign-in lockouts (django-axes) --------------------------------------------------------------

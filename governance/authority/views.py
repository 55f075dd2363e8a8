"""Governance pages (delegations) and the operational endpoints (liveness, readiness)."""

from __future__ import annotations

import base64
import csv
import functools
import math

from axes.helpers import get_client_username
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance import catalogue, identity, lockouts, policy_changes, reviews, services, stepup
from governance.exceptions import GovernanceError
from governance.forms import (
    AccessReviewCertifyForm,
    CatalogueFilterForm,
    DelegationForm,
    ProfileForm,
    ReasonForm,
    RoleFilterForm,
    RoleGrantForm,
    ScimTokenForm,
    ScimTokenRevokeForm,
    StepUpCodeForm,
)
from governance.models import (
    AccessReview,
    AccessReviewItem,
    Delegation,
    LedgerEntry,
    Policy,
    PolicyProposal,
    RoleAssignment,
    ScimToken,
    Team,
)

ROLE_PAGE_SIZE = 50


def administrator_required(view):
    """Administrators only; everyone else gets 403 (the page exists, it is just not theirs)."""

    @functools.wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not services.is_administrator(request.user):
            raise PermissionDenied("This page is for Signoff administrators.")
        return view(request, *args, **kwargs)

    return wrapper


def _form_errors_from(form, exc: GovernanceError) -> None:
    """Show a refused service call on the form: the message on top, field hints in place."""
    form.add_error(None, exc.message)
    for field, errors in exc.fields.items():
        if field in form.fields:
            form.add_error(field, errors)


@administrator_required
@require_http_methods(["GET", "POST"])
def roles(request: HttpRequest) -> HttpResponse:
    """Who holds which role where: search, filter, grant, revoke, and the recent history."""
    form = RoleGrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.grant_role(actor=request.user, **form.cleaned_data)
        except GovernanceError as exc:
            _form_errors_from(form, exc)
        else:
            messages.success(request, "Role granted.")
            return redirect("governance:role_list")
    filters = RoleFilterForm(request.GET or None)
    assignments = RoleAssignment.objects.select_related(
        "user", "service", "team", "environment", "granted_by"
    )
    if filters.is_valid():
        assignments = _filter_roles(assignments, filters.cleaned_data)
    page = Paginator(assignments.order_by("user__username", "role", "pk"), ROLE_PAGE_SIZE)
    history = LedgerEntry.objects.filter(kind__in=["role.granted", "role.revoked"]).order_by("-seq")
    context = {
        "form": form,
        "filters": filters,
        "history": history[:15],
        "page": page.get_page(request.GET.get("page")),
    }
    return render(request, "governance/roles.html", context, status=400 if form.errors else 200)


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
        services.revoke_role(assignment=assignment, actor=request.user, **form.cleaned_data)
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
    admin = services.is_administrator(request.user)
    form = DelegationForm(request.POST or None, user=request.user, for_anyone=admin)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        delegator = data.pop("delegator", request.user)
        try:
            services.create_delegation(delegator=delegator, actor=request.user, **data)
        except GovernanceError as exc:
            _form_errors_from(form, exc)
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
        request, "governance/delegations.html", context, status=400 if form.errors else 200
    )


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """Working hours, time zone and the step-up authenticator."""
    action = request.POST.get("action") if request.method == "POST" else None
    profile_form = ProfileForm(request.POST if action == "profile" else None, instance=request.user)
    code_form = StepUpCodeForm(request.POST if action == "confirm" else None)
    if action == "profile" and profile_form.is_valid():
        services.update_profile(user=request.user, **profile_form.cleaned_data)
        messages.success(request, "Profile saved.")
        return redirect("governance:profile")
    if action == "confirm" and code_form.is_valid():
        try:
            stepup.confirm_enrolment(user=request.user, code=code_form.cleaned_data["code"])
        except GovernanceError as exc:
            code_form.add_error("code", exc.message)
        else:
            messages.success(request, "Authenticator enrolled: step-up approvals will ask for it.")
            return redirect("governance:profile")
    if action == "remove":
        stepup.remove_authenticator(user=request.user)
        messages.success(request, "Authenticator removed.")
        return redirect("governance:profile")
    return render(
        request,
        "governance/profile.html",
        _profile_context(request, profile_form, code_form),
        status=400 if action and (profile_form.errors or code_form.errors) else 200,
    )


def _profile_context(request: HttpRequest, profile_form, code_form) -> dict:
    device = stepup.confirmed_device(request.user)
    pending = None if device else stepup.pending_device(request.user)
    return {
        "profile_form": profile_form,
        "code_form": code_form,
        "device": device,
        "qr_svg": stepup.qr_svg(pending) if pending else "",
        "secret": base64.b32encode(pending.bin_key).decode() if pending else "",
    }


@login_required
@require_POST
def delegation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """The delegator ends their delegation early."""
    delegations = Delegation.objects.all()
    if not services.is_administrator(request.user):
        delegations = delegations.filter(delegator=request.user)  # the delegator ends their own
    delegation = get_object_or_404(delegations, pk=pk)
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
    checks["static"] = _static_assets_check()
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


# What base.html, the Django admin and the API docs link to: if the static files manifest cannot
# name these, those pages answer 500 while the database and broker look fine.
PAGE_ASSETS = (
    "vendor/bootstrap/bootstrap.min.css",
    "vendor/bootstrap-icons/bootstrap-icons.min.css",
    "css/signoff.css",
    "vendor/bootstrap/bootstrap.bundle.min.js",
    "vendor/htmx/htmx.min.js",
    "admin/css/base.css",
    "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
)


def _static_assets_check() -> str:
    """Return "ok" if every asset the pages link to resolves as the {% static %} tag would."""
    for name in PAGE_ASSETS:
        try:
            staticfiles_storage.url(name)
        except ValueError:  # The manifest storage's "Missing staticfiles manifest entry".
            return f"error: {name} is not in the static files manifest (run collectstatic)"
    return "ok"


def _reviewer(user) -> bool:
    return services.is_administrator(user) or user.owned_services.exists()


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
        "governance/access_reviews.html",
        {"campaigns": campaigns, "can_start": services.is_administrator(request.user)},
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
    page = Paginator(items.order_by("user__username", "role", "pk"), ROLE_PAGE_SIZE).get_page(
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
    return render(request, "governance/access_review_detail.html", context)


FINDING_LABELS = dict(AccessReviewItem.Finding.choices)


@login_required
@require_POST
def access_review_certify(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(
        AccessReviewItem.objects.select_related("review", "user", "service"), pk=pk
    )
    try:
        reviews.certify(
            item=item,
            outcome=request.POST.get("outcome", ""),
            reason=request.POST.get("reason", ""),
            actor=request.user,
        )
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{item.user.username}: {request.POST.get('outcome')} recorded.")
    return redirect("governance:access_review_detail", pk=item.review_id)


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
    """The campaign's result as CSV, streamed so its size never matters."""
    if not services.is_administrator(request.user) and not request.user.has_perm(
        "governance.view_releases"
    ):
        raise PermissionDenied
    review = get_object_or_404(AccessReview, pk=pk)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in reviews.csv_rows(review)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="access-review-{review.pk}.csv"'
    return response


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


@administrator_required
@require_GET
def policies(request: HttpRequest) -> HttpResponse:
    """Policies, their versions, and changes waiting for a second administrator."""
    proposals = list(
        PolicyProposal.objects.filter(outcome=PolicyProposal.Outcome.PENDING).select_related(
            "policy", "proposed_by"
        )
    )
    for proposal in proposals:
        proposal.diff = policy_changes.diff(proposal)
        proposal.mine = proposal.proposed_by_id == request.user.pk
    context = {
        "policies": Policy.objects.prefetch_related("versions__created_by"),
        "proposals": proposals,
        "decided": PolicyProposal.objects.exclude(
            outcome=PolicyProposal.Outcome.PENDING
        ).select_related("policy", "proposed_by", "decided_by")[:10],
    }
    return render(request, "governance/policies.html", context)


@administrator_required
@require_POST
def policy_proposal_decide(request: HttpRequest, pk: int) -> HttpResponse:
    proposal = get_object_or_404(PolicyProposal, pk=pk)
    reason = request.POST.get("reason", "")
    try:
        if request.POST.get("decision") == "approve":
            version = policy_changes.approve_proposal(
                proposal=proposal, actor=request.user, reason=reason
            )
            messages.success(request, f"Published {version}.")
        else:
            policy_changes.reject_proposal(proposal=proposal, actor=request.user, reason=reason)
            messages.success(request, "Proposal rejected.")
    except GovernanceError as exc:
        messages.error(request, exc.message)
    return redirect("governance:policy_list")


@administrator_required
@require_GET
def catalogue_list(request: HttpRequest, section: str) -> HttpResponse:
    """People, teams, services, environments or vendors, with search and filters."""
    config = _section(section)
    filters = CatalogueFilterForm(request.GET)
    # A filter that cannot be applied lists nothing: an unfiltered list would look like its answer.
    valid = filters.is_valid()
    rows = config.rows(filters.cleaned_data) if valid else config.model.objects.none()
    page = Paginator(rows.order_by("pk"), ROLE_PAGE_SIZE).get_page(request.GET.get("page"))
    table = [(row, config.cells(row)) for row in page]
    context = {
        "section": section,
        "config": config,
        "filters": filters,
        "page": page,
        "table": table,
        "teams": Team.objects.all(),
        "tags": catalogue.compliance_tags_in_use() if "tag" in config.filters else [],
        "sections": catalogue.SECTIONS,
    }
    return render(request, "governance/catalogue_list.html", context, status=200 if valid else 400)


@administrator_required
@require_http_methods(["GET", "POST"])
def catalogue_edit(request: HttpRequest, section: str, pk: int | None = None) -> HttpResponse:
    config = _section(section)
    if pk is None and not config.can_add:
        raise Http404("People are added by the identity provider (SCIM) or in /admin/.")
    instance = get_object_or_404(config.model, pk=pk) if pk else None
    form = config.form(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        try:
            catalogue.save_entry(form=form, actor=request.user, section=section)
        except GovernanceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Saved.")
            return redirect("governance:catalogue_list", section=section)
    return render(
        request,
        "governance/catalogue_edit.html",
        {"section": section, "config": config, "form": form, "instance": instance},
        status=400 if form.errors else 200,
    )


def _section(name: str) -> catalogue.Section:
    if name not in catalogue.SECTIONS:
        raise Http404("No such catalogue section.")
    return catalogue.SECTIONS[name]


@administrator_required
@require_http_methods(["GET", "POST"])
def scim_tokens(request: HttpRequest) -> HttpResponse:
    """SCIM bearer tokens for the identity provider: issue one (shown once here), or revoke."""
    new_key, form, revoke = "", ScimTokenForm(), ScimTokenRevokeForm()
    if request.method == "POST" and "revoke" in request.POST:
        revoke = ScimTokenRevokeForm(request.POST)
        if revoke.is_valid():
            token = revoke.cleaned_data["revoke"]
            identity.revoke_scim_token(token=token, actor=request.user)
            messages.success(request, f"Token {token.name} revoked.")
            return redirect("governance:scim_tokens")
    elif request.method == "POST":
        form = ScimTokenForm(request.POST)
        if form.is_valid():
            _, new_key = identity.issue_scim_token(
                name=form.cleaned_data["name"], actor=request.user
            )
            form = ScimTokenForm()  # An empty field for the next one.
    tokens = ScimToken.objects.select_related("created_by").order_by("-created_at")
    context = {
        "tokens": tokens,
        "form": form,
        "revoke": revoke,
        "new_key": new_key,
        "scim_url": f"{settings.SITE_URL}/scim/v2/",
    }
    status = 400 if form.errors or revoke.errors else 200
    return render(request, "governance/scim_tokens.html", context, status=status)


# --- Sign-in lockouts (django-axes) --------------------------------------------------------------


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """django-axes' answer to a locked sign-in (AXES_LOCKOUT_CALLABLE): the app's layout, 429,
    when to try again and whom to ask."""
    lock = lockouts.lockout_of(
        username=get_client_username(request, credentials),
        ip=getattr(request, "axes_ip_address", None),
    )
    until = lock.until if lock else None
    response = render(request, "governance/locked_out.html", {"until": until}, status=429)
    if until is not None:
        response["Retry-After"] = str(max(1, math.ceil((until - timezone.now()).total_seconds())))
    return response


@administrator_required
@require_GET
def lockout_list(request: HttpRequest) -> HttpResponse:
    """Usernames and addresses locked out of sign-in now, each with an unlock form."""
    page = Paginator(lockouts.current_lockouts(), ROLE_PAGE_SIZE).get_page(request.GET.get("page"))
    history = LedgerEntry.objects.filter(kind__in=["auth.locked_out", "auth.unlocked"])
    context = {
        "page": page,
        "lockouts": page.object_list,
        "history": history.order_by("-seq")[:15],
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cool_off_minutes": _minutes(settings.AXES_COOLOFF_TIME),
    }
    return render(request, "governance/lockouts.html", context)


def _minutes(duration) -> int | None:
    return int(duration.total_seconds() // 60) if duration else None


@administrator_required
@require_POST
def lockout_unlock(request: HttpRequest) -> HttpResponse:
    username, ip = request.POST.get("username", ""), request.POST.get("ip", "")
    try:
        failures = services.unlock_account(
            username=username, ip=ip, actor=request.user, reason=request.POST.get("reason", "")
        )
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Unlocked {username or ip}: {failures} failed sign-ins cleared.")
    return redirect("governance:lockout_list")

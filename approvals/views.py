"""Approver pages: my queue, the releases in my scope, a release, and the decision."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from approvals import services
from approvals.admission.presenters import promotion_panel
from approvals.calendar import release_conflicts
from approvals.emergencies.models import EmergencyException
from approvals.emergencies.selectors import release_panel
from approvals.forms import DecisionForm, QueueFilterForm, ReasonForm, ReleaseFilterForm
from approvals.live import LiveVersion, Shown, announcements, box_notices, live_version
from approvals.models import ApprovalStage, Release, ReleaseQuerySet
from approvals.pipelines.presenters import pipeline_panel
from approvals.presenters import person_view, release_page
from changes.calendar.conflicts import Conflict, change_conflicts
from changes.freezes.forms import OverrideRequestForm
from changes.freezes.selectors import freezes_holding, overrides_for_release
from changes.freezes.services import request_override
from changes.incidents.models import Incident
from changes.incidents.selectors import HIGH_RISK
from changes.models import ChangeRecord, Freeze
from changes.records.selectors import changes_visible_to
from changes.reviews.selectors import reviews_for_release
from governance.authority.decorators import administrator_required
from governance.authority.models import holds_everywhere
from governance.authority.services import is_administrator
from governance.exceptions import GovernanceError
from governance.identity.authentication import client_ip
from governance.models import LedgerEntry, Service

PAGE_SIZE = 25


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    """Only what the signed-in person may decide now, oldest first, with filters."""
    now = timezone.now()
    form = QueueFilterForm(request.GET or None)
    stages = form.filter(
        ApprovalStage.objects.decidable_by(request.user).with_queue_related(), now
    ).order_by("request__requested_at", "pk")
    page = Paginator(stages, PAGE_SIZE).get_page(request.GET.get("page"))
    template = "approvals/partials/_queue_table.html" if request.htmx else "approvals/queue.html"
    context = {"page": page, "now": now, "me": person_view(request.user, now), "form": form}
    return render(request, template, context)


@login_required
@require_GET
def release_list(request: HttpRequest) -> HttpResponse:
    """Every release in the person's scope, newest first, filterable by status and text."""
    form = ReleaseFilterForm(request.GET or None)
    releases = (
        Release.objects.restrict(request.user, delegated=True)
        .with_list_related()
        .annotate(enhanced_monitoring=_under_enhanced_monitoring())
        .order_by("-created_at", "-pk")
    )
    if form.is_valid():
        releases = _filter_releases(releases, form.cleaned_data)
    page = Paginator(releases, PAGE_SIZE).get_page(request.GET.get("page"))
    template = (
        "approvals/partials/_release_table.html" if request.htmx else "approvals/release_list.html"
    )
    return render(request, template, {"page": page, "form": form})


def _under_enhanced_monitoring() -> Exists:
    # A release of a change declared an emergency stays flagged after its exception ends:
    # monitoring follows what was deployed on the emergency path, not the window alone.
    return Exists(
        EmergencyException.objects.filter(change_id=OuterRef("change_id"), enhanced_monitoring=True)
    )


def _filter_releases(releases, data: dict):
    status, text = data.get("status"), data.get("q")
    if data.get("monitoring"):
        releases = releases.filter(enhanced_monitoring=True)
    if status == "unapproved":
        releases = releases.filter(unapproved_deployment_at__isnull=False)
    elif status == "deployed":
        releases = releases.filter(deployed_at__isnull=False)
    elif status:
        releases = releases.filter(approval__status=status, deployed_at__isnull=True)
    if text:
        releases = releases.filter(
            Q(service__slug__icontains=text)
            | Q(version__icontains=text)
            | Q(change__ref__icontains=text)
            | Q(digest__icontains=text)
        )
    return releases


@login_required
@require_GET
def release_detail(request: HttpRequest, pk: int) -> HttpResponse:
    releases = Release.objects.restrict(request.user, delegated=True)
    version = _live_version_or_404(releases, pk)
    release = releases.for_page().get(pk=pk)
    context = _detail_context(release, request.user, version)
    context.update(_page_panels(release, request.user))
    return render(request, "approvals/release_detail.html", context)


def _page_panels(release: Release, user) -> dict:
    """The whole page's panels outside the live part: an emergency's exception, freezes, the
    change, incidents, and the release's post-implementation reviews."""
    emergency = release_panel(release.change, user, timezone.now())
    excepted = bool(emergency and emergency["window"]["in_force"])
    return {
        "emergency_panel": emergency,
        "freezes": _freeze_panel(release, user, excepted),
        "change_panel": _change_panel(release, user),
        "incident_panel": _incident_panel(release, excepted),
        "release_reviews": reviews_for_release(release.pk),
        "promotion": promotion_panel(release),
        "pipeline_runs": pipeline_panel(release),
    }


def _change_panel(release: Release, user) -> dict:
    """The release's change: its record, and what its window and the release's time run into.

    The release's conflicts come first; one its change has too (the same other change, freeze
    or service short of approvers) is shown once. A conflict with a change on services the
    viewer may not see says only that there is one, as on the change page.
    """
    change = release.change
    visible = None
    if not holds_everywhere(user, "view"):
        visible = set(Service.objects.restrict(user, "view").values_list("pk", flat=True))
    found: dict[tuple[str, str, str], Conflict] = {}
    for conflict in [*release_conflicts(release), *change_conflicts(change)]:
        found.setdefault((conflict.kind, conflict.label, conflict.url), conflict)
    return {
        "change": change,
        "life_cycle": _life_cycle(change),
        "conflicts": [conflict.seen_by(visible) for conflict in found.values()],
        "may_see_change": change.pk in _visible_change_ids(user, change),
    }


def _visible_change_ids(user, change: ChangeRecord) -> set[int]:
    # Someone who sees the release only through a delegation may not see the change page (it
    # goes by the services one sees oneself): the ref is linked only for those it opens for.
    return set(changes_visible_to(user).filter(pk=change.pk).values_list("pk", flat=True))


def _life_cycle(change: ChangeRecord) -> list[dict]:
    """The life cycle's steps in order, the change's own marked; cancelled only when it is."""
    states = [*ChangeRecord.LIFE_CYCLE]
    if change.state == ChangeRecord.State.CANCELLED:
        states.append(ChangeRecord.State.CANCELLED)
    return [
        {"label": ChangeRecord.State(state).label, "current": state == change.state}
        for state in states
    ]


def _incident_panel(release: Release, excepted: bool) -> dict:
    """Open incidents on the release's service and its direct dependencies, and the incident
    its change fixes; each says where it is and whether it holds this release.

    Holding mirrors the gate (changes.incidents.selectors.incident_hold_reasons): a blocking
    incident affecting the service holds releases to high-risk environments, except while the
    release's change holds an emergency exception in force (`excepted`). One query, whatever
    the number shown.
    """
    change = release.change
    service_id = release.service_id
    links = Incident.services.through.objects.filter(incident_id=OuterRef("pk"))
    dependencies = Service.depends_on.through.objects.filter(from_service_id=service_id)
    affecting = Incident.objects.open().affecting(service_id).values("pk")
    incidents = (
        Incident.objects.filter(Q(pk__in=affecting) | Q(pk=change.incident_id or 0))
        .annotate(
            on_service=Exists(links.filter(service_id=service_id)),
            on_dependency=Exists(links.filter(service_id__in=dependencies.values("to_service_id"))),
        )
        .order_by("-opened_at", "-pk")
    )
    high_risk = release.environment.risk == HIGH_RISK
    rows = []
    for incident in incidents:
        # What the gate counts against a release to a high-risk environment.
        counted = (
            high_risk and incident.is_blocking and (incident.on_service or incident.on_dependency)
        )
        rows.append(
            {
                "incident": incident,
                "where": _where(incident),
                "holds": counted and not excepted,
                "excepted": counted and excepted,
                "fixed_by_change": incident.pk == change.incident_id,
            }
        )
    return {"rows": rows, "high_risk": high_risk}


def _where(incident: Incident) -> str:
    # Only "a service it depends on": the dependency's name is not the viewer's to learn here.
    if incident.on_service:
        return "on this service"
    if incident.on_dependency:
        return "on a service it depends on"
    return "on another service"


def _freeze_panel(release: Release, user, excepted: bool = False) -> dict:
    """The hard freezes holding the release now and its overrides; administrators ask for an
    override here and confirm one another's. None holds a release whose change's emergency
    exception is in force (`excepted`), as at the gate: its panel says so instead."""
    now = timezone.now()
    holding = [] if excepted else freezes_holding(release.service_id, release.environment_id, now)
    administrator = is_administrator(user)
    form = None
    if administrator and holding:
        form = OverrideRequestForm(freezes=Freeze.objects.filter(pk__in=[f.pk for f in holding]))
    return {
        "holding": holding,
        "overrides": list(overrides_for_release(release.pk)),
        "administrator": administrator,
        "override_form": form,
        "now": now,
    }


@administrator_required
@require_POST
def release_freeze_override(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask to let this release through a freeze holding it; a second administrator confirms."""
    release = get_object_or_404(Release.objects.restrict(request.user).for_write(), pk=pk)
    holding = freezes_holding(release.service_id, release.environment_id, timezone.now())
    form = OverrideRequestForm(
        request.POST, freezes=Freeze.objects.filter(pk__in=[f.pk for f in holding])
    )
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        messages.error(request, f"Override not asked: {field}: {errors[0]}")
        return redirect("approvals:release_detail", pk=release.pk)
    try:
        request_override(
            freeze=form.cleaned_data["freeze"],
            release=release,
            actor=request.user,
            reason=form.cleaned_data["reason"],
            hours=form.cleaned_data["hours"],
        )
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Override asked; another administrator must confirm it.")
    return redirect("approvals:release_detail", pk=release.pk)


@login_required
@require_GET
@never_cache
def release_updates(request: HttpRequest, pk: int) -> HttpResponse:
    """An open release page's poll: 204 while what it shows is current, else the live parts
    only (out-of-band swaps by id), so the forms someone may be typing in are never replaced."""
    releases = Release.objects.restrict(request.user, delegated=True)
    version = _live_version_or_404(releases, pk)
    shown = Shown.from_query(request.GET)
    if shown.token == version.token:
        return HttpResponse(status=204)
    release = releases.for_page().get(pk=pk)
    context = _detail_context(release, request.user, version, shown=shown)
    page = context["page"]
    context["news"] = announcements(page, context["ledger_entries"], shown)
    context["notices"] = box_notices(page, shown)
    return render(request, "approvals/partials/_release_updates.html", context)


def _live_version_or_404(releases: ReleaseQuerySet, pk: int) -> LiveVersion:
    # Read before the page's content: content read afterwards can only be newer than the
    # version the page polls with, so a change landing in between is shown at the next poll.
    version = live_version(releases, pk)
    if version is None:
        raise Http404("No such release in your scope.")
    return version


def _detail_context(
    release: Release,
    user,
    version: LiveVersion,
    form: DecisionForm | None = None,
    error: str = "",
    shown: Shown | None = None,
) -> dict:
    page = release_page(release, user)
    ledger = list(LedgerEntry.objects.filter(subject=f"release:{release.pk}").order_by("seq"))
    # After a poll the boxes stay as they were rendered; a full render shows the current ones.
    now_shown = shown.after(version, page) if shown else Shown.from_page(page, version)
    url = reverse("approvals:release_updates", args=[release.pk])
    return {
        "page": page,
        "form": form or DecisionForm(),
        "error": error,
        "ledger_entries": ledger,
        "live": {
            "url": f"{url}?{urlencode(now_shown.query())}",
            "seconds": settings.SIGNOFF_LIVE_POLL_SECONDS,
            "final": version.final,
        },
    }


@login_required
@require_POST
def release_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve or reject. htmx swaps the live panel; a plain POST redirects back to the page."""
    release = get_object_or_404(
        Release.objects.restrict(request.user, delegated=True).with_list_related(), pk=pk
    )
    form = DecisionForm(request.POST)
    status, error = 200, ""
    if form.is_valid():
        try:
            services.record_decision(
                release=release,
                actor=request.user,
                verdict=form.cleaned_data["verdict"],
                rationale=form.cleaned_data["rationale"],
                step_up_code=form.cleaned_data["step_up_code"] or None,
                channel="ui",
                client_address=client_ip(request),
                user_agent=request.headers.get("User-Agent", ""),
            )
        except GovernanceError as exc:
            status, error = 409, exc.message
        else:
            form = None
            if not request.htmx:
                return redirect("approvals:release_detail", pk=release.pk)
    else:
        status = 422
    version = live_version(Release.objects.all(), release.pk)
    release = Release.objects.for_page().get(pk=release.pk)
    context = _detail_context(release, request.user, version, form, error)
    if not request.htmx:  # the whole page, as release_detail shows it
        context.update(_page_panels(release, request.user))
    template = (
        "approvals/partials/_release_live.html" if request.htmx else "approvals/release_detail.html"
    )
    return render(request, template, context, status=status)


@login_required
@require_POST
def release_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    """The requester (or a release manager) withdraws a pending request, with a reason."""
    release = get_object_or_404(Release.objects.restrict(request.user).for_write(), pk=pk)
    return _act_with_reason(
        request,
        release,
        services.withdraw_request,
        missing="Give a reason to withdraw the request.",
        done="Request withdrawn; nobody can decide it any more.",
    )


@login_required
@require_POST
def release_request_again(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask again for a closed request; the new release page opens, linked to this one."""
    release = get_object_or_404(Release.objects.restrict(request.user).for_write(), pk=pk)
    try:
        again = services.request_again(release=release, actor=request.user)
    except GovernanceError as exc:
        messages.error(request, exc.message)
        return redirect("approvals:release_detail", pk=release.pk)
    messages.success(request, f"Requested again as #{again.pk}.")
    return redirect("approvals:release_detail", pk=again.pk)


@login_required
@require_POST
def release_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """An approver takes back their approval while the stage is still open."""
    release = get_object_or_404(
        Release.objects.restrict(request.user, delegated=True).for_write(), pk=pk
    )
    return _act_with_reason(
        request,
        release,
        services.revoke_approval,
        missing="Give a reason to revoke your approval.",
        done="Your approval is revoked; it no longer counts.",
    )


def _act_with_reason(request: HttpRequest, release: Release, action, *, missing: str, done: str):
    """Run a service that needs a reason from the form; say how it went on the release page."""
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, missing)
    else:
        try:
            action(release=release, actor=request.user, reason=form.cleaned_data["reason"])
        except GovernanceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, done)
    return redirect("approvals:release_detail", pk=release.pk)

"""The metrics pages, one per audience, each chart's numbers also as CSV
(`?format=csv&chart=<panel>` with the page's filters).

Who sees what:
- release managers (a release_manager grant in force): time to approve, abandonment and
  outcomes by delay, for the services they may see;
- CAB members (a cab_member grant in force): bottleneck stages and approvers, SLA attainment,
  bypasses and exceptions, unapproved deployments, for the services they may see;
- administrators: every panel, on everything; auditors read all three pages within their scope.
Everyone else gets 403: the pages exist, they are just not theirs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from governance.authority.selectors import roles_in_force
from governance.authority.services import is_administrator
from governance.models import Role, Service, User, holds_everywhere
from reporting.metrics.forms import MetricsForm
from reporting.metrics.models import MetricsRefresh
from reporting.metrics.panels import PANELS, Panel


@dataclass(frozen=True)
class Audience:
    slug: str
    url_name: str
    title: str
    role: str
    panels: tuple[str, ...]


AUDIENCES = {
    "releases": Audience(
        "releases",
        "reporting:metrics_release_managers",
        "Release metrics",
        Role.RELEASE_MANAGER,
        ("time_to_approve", "abandonment", "outcomes_by_delay"),
    ),
    "cab": Audience(
        "cab",
        "reporting:metrics_cab",
        "CAB metrics",
        Role.CAB_MEMBER,
        ("bottleneck_stages", "bottleneck_people", "sla", "exceptions", "unapproved"),
    ),
    "administration": Audience(
        "administration",
        "reporting:metrics_administration",
        "Approval metrics",
        Role.ADMINISTRATOR,
        tuple(PANELS),
    ),
}


def audiences_for(user: User) -> list[Audience]:
    """The metrics pages `user` may open: by role, all of them for administrators and auditors."""
    roles = roles_in_force(user)
    if is_administrator(user) or Role.AUDITOR in roles:
        return list(AUDIENCES.values())
    return [
        page
        for page in AUDIENCES.values()
        if page.role in roles and page.role != Role.ADMINISTRATOR
    ]


def viewer_scope(user: User) -> QuerySet[Service] | None:
    """The services whose numbers `user` may see; None when that is every service."""
    return None if holds_everywhere(user, "view") else Service.objects.restrict(user, "view")


@login_required
@require_GET
def metrics_home(request: HttpRequest) -> HttpResponse:
    """/metrics/, the navigation's link: the first metrics page open to the visitor."""
    pages = audiences_for(request.user)
    if not pages:
        raise PermissionDenied(
            "The metrics pages are for release managers, the CAB and administrators."
        )
    return redirect(pages[0].url_name)


@login_required
@require_GET
def release_managers(request: HttpRequest) -> HttpResponse:
    return _metrics_page(request, AUDIENCES["releases"])


@login_required
@require_GET
def cab(request: HttpRequest) -> HttpResponse:
    return _metrics_page(request, AUDIENCES["cab"])


@login_required
@require_GET
def administration(request: HttpRequest) -> HttpResponse:
    return _metrics_page(request, AUDIENCES["administration"])


def _metrics_page(request: HttpRequest, audience: Audience) -> HttpResponse:
    """Check access, validate the filters, then render the page or one panel's CSV."""
    pages = audiences_for(request.user)
    if audience not in pages:
        raise PermissionDenied(f"{audience.title} are not among the pages open to you.")
    scope = viewer_scope(request.user)
    form = MetricsForm(MetricsForm.with_defaults(request.GET), scope=scope)
    wanted = request.GET.get("chart") if request.GET.get("format") == "csv" else None
    if wanted is not None and wanted not in audience.panels:
        choices = ", ".join(audience.panels)
        return _plain_error(f"chart: choose one of {choices}.")
    if not form.is_valid():
        if wanted is not None:
            return _plain_error(*(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        context = {"form": form, "audience": audience, "pages": pages}
        return render(request, "reporting/metrics/page.html", context, status=400)
    filters = form.filters(now=timezone.now(), scope=scope)
    by = form.cleaned_data["by"]
    if wanted is not None:
        return _csv(PANELS[wanted](filters, by), filters)
    context = {
        "form": form,
        "audience": audience,
        "pages": pages,
        "panels": [PANELS[name](filters, by) for name in audience.panels],
        "refresh": MetricsRefresh.objects.order_by("pk").first(),
        "period": f"{filters.start:%-d %b %Y} to {filters.end:%-d %b %Y}",
    }
    return render(request, "reporting/metrics/page.html", context)


def _plain_error(*lines: str) -> HttpResponse:
    return HttpResponse("\n".join(lines) + "\n", status=400, content_type="text/plain")


def _csv(panel: Panel, filters) -> HttpResponse:
    """The panel's table as CSV: its header, then one line per row, as the page shows them."""
    response = HttpResponse(content_type="text/csv")
    name = f"{panel.name}-{filters.start:%Y%m%d}-{filters.end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(panel.columns)
    writer.writerows(panel.rows)
    return response

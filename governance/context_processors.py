"""Template context shared by every page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from governance.authority.models import Role
from governance.authority.selectors import roles_in_force


def sign_in(request: HttpRequest) -> dict:
    """Whether the sign-in page offers single sign-on, and under which name."""
    return {"sso_name": settings.OIDC_PROVIDER_NAME if settings.OIDC_RP_CLIENT_ID else ""}


INSIGHTS = ("/metrics/", "/reviews/", "/anomalies/", "/lake/")
MEASURING_ROLES = {Role.RELEASE_MANAGER, Role.CAB_MEMBER, Role.AUDITOR}
WATCHING_ROLES = {Role.SECURITY_APPROVER, Role.ADMINISTRATOR, Role.AUDITOR}


def navigation(request: HttpRequest) -> dict:
    """What the navigation offers: the section, administration, the approver's pages (queue,
    delegations) only to people who may decide, so never to auditors, the CAB's pages to its
    members and administrators, and the reports to auditors."""
    user = getattr(request, "user", None)
    section = request.resolver_match.namespace if request.resolver_match else ""
    if request.path.startswith("/reports/"):
        section = "reports"  # the auditors' pages, in the reporting app beside the dashboard
    elif request.path.startswith(INSIGHTS):
        section = "insights"  # measuring the process: metrics, reviews, alerts, the data lake
    context = {"nav_section": section}
    if user and user.is_authenticated:
        context["is_admin"] = user.is_staff
        # Lazy, and one query for both flags: asked only when a template shows the navigation.
        roles = SimpleLazyObject(lambda: roles_in_force(user))
        context["decides"] = SimpleLazyObject(
            lambda: not user.is_service_account and Role.AUDITOR not in roles
        )
        context["audits"] = SimpleLazyObject(lambda: Role.AUDITOR in roles)
        context["sits_on_cab"] = SimpleLazyObject(lambda: user.is_staff or Role.CAB_MEMBER in roles)
        # Who finds the pages that measure the process (each page checks its own audience).
        context["measures"] = SimpleLazyObject(
            lambda: user.is_staff or bool(MEASURING_ROLES & set(roles))
        )
        context["watches_anomalies"] = SimpleLazyObject(
            lambda: user.is_staff or bool(WATCHING_ROLES & set(roles))
        )
    return context

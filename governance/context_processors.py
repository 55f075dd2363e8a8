"""Template context shared by every page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def sign_in(request: HttpRequest) -> dict:
    """Whether the sign-in page offers single sign-on, and under which name."""
    return {"sso_name": settings.OIDC_PROVIDER_NAME if settings.OIDC_RP_CLIENT_ID else ""}


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    return {"nav_section": request.resolver_match.namespace if request.resolver_match else ""} | (
        {"is_admin": user.is_staff} if user and user.is_authenticated else {}
    )

"""Template context shared by every page."""

from __future__ import annotations

from django.http import HttpRequest


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    return {"nav_section": request.resolver_match.namespace if request.resolver_match else ""} | (
        {"is_admin": user.is_staff} if user and user.is_authenticated else {}
    )

"""Who may open the auditors' pages and exports: people holding the auditor role, signed in or
sending one of their API tokens (`Authorization: Bearer <token>`), so a script can fetch the
ledger export and the compliance reports the way a browser does.

Everyone else gets 403: the reports exist, they are just not theirs. The ledger and the audit
trail cover the whole organisation, so they need an auditor grant on everything (no service or
team scope); compliance reports and evidence packs show a scoped auditor their own services.
"""

from __future__ import annotations

import functools

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions

from governance.authority.selectors import auditor_grants
from governance.identity.authentication import BearerTokenAuthentication
from governance.models import User


def is_organisation_auditor(user: User) -> bool:
    """Whether `user` holds the auditor role on everything (no service, no team scope)."""
    return (
        user.is_active
        and auditor_grants().filter(user=user, service__isnull=True, team__isnull=True).exists()
    )


def holds_auditor_role(user: User) -> bool:
    return user.is_active and auditor_grants().filter(user=user).exists()


def auditor_required(view=None, *, organisation_wide: bool = False):
    """Auditors only, by session or bearer token; `organisation_wide` for whole-ledger views."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.headers.get("Authorization"):
                refused = _authenticate_token(request)
                if refused:
                    return refused
            elif not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            allowed = is_organisation_auditor if organisation_wide else holds_auditor_role
            if not allowed(request.user):
                raise PermissionDenied(
                    "This page is for auditors of the whole organisation."
                    if organisation_wide
                    else "This page is for auditors."
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def _authenticate_token(request: HttpRequest) -> HttpResponse | None:
    """Put the token's person on the request, or answer 401/429 as the API does."""
    try:
        found = BearerTokenAuthentication().authenticate(request)
    except exceptions.Throttled as exc:
        response = _error("throttled", str(exc.detail), 429)
        response["Retry-After"] = str(exc.wait or 1)
        return response
    except exceptions.AuthenticationFailed as exc:
        return _error("not_authenticated", str(exc.detail), 401)
    if found is None:  # another scheme (Basic...): not one Signoff accepts here
        return _error("not_authenticated", "Send Authorization: Bearer <token>.", 401)
    request.user = found[0]
    return None


def _error(code: str, message: str, status: int) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    response["WWW-Authenticate"] = "Bearer"
    return response

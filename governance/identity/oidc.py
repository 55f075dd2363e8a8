"""OpenID Connect sign-in (Okta, Microsoft Entra ID) through mozilla-django-oidc.

Off unless OIDC_RP_CLIENT_ID is set. People are matched to accounts that SCIM (or an
administrator) created, by username or e-mail; sign-in never creates accounts by default, so the
identity provider's provisioning stays the one source of who exists. Local accounts keep working
for the quick start and for break-glass access.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from governance.people.models import User


def oidc_enabled() -> bool:
    return bool(getattr(settings, "OIDC_RP_CLIENT_ID", ""))


class SignoffOIDCBackend(OIDCAuthenticationBackend):
    """Signs in existing, active people; never service accounts."""

    def __init__(self, *args, **kwargs) -> None:
        # Django builds every backend for every sign-in: without OIDC settings, stay inert
        # instead of failing password sign-ins.
        self.enabled = oidc_enabled()
        if self.enabled:
            super().__init__(*args, **kwargs)

    def authenticate(self, request, **kwargs):
        if not self.enabled:
            return None
        return super().authenticate(request, **kwargs)

    def verify_claims(self, claims: dict) -> bool:
        return bool(claims.get("preferred_username") or claims.get("email"))

    def filter_users_by_claims(self, claims: dict):
        people = User.objects.filter(is_active=True, is_service_account=False)
        username = (claims.get("preferred_username") or "").strip()
        email = (claims.get("email") or "").strip()
        match = Q(pk__in=[])
        if username:
            match |= Q(username__iexact=username)
        if email:
            match |= Q(email__iexact=email)
        return people.filter(match)

    def create_user(self, claims: dict) -> User:
        email = claims.get("email", "")
        username = claims.get("preferred_username") or email
        return User.objects.create_user(
            username,
            email=email,
            first_name=claims.get("given_name", ""),
            last_name=claims.get("family_name", ""),
        )


def _only_when_enabled(view):
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("Single sign-on is not configured.")
        return view(request, *args, **kwargs)

    return wrapped


authenticate_view = _only_when_enabled(OIDCAuthenticationRequestView.as_view())
callback_view = _only_when_enabled(OIDCAuthenticationCallbackView.as_view())

"""Identity pages: a person's profile and step-up authenticator, SCIM tokens, sign-in lockouts."""

from __future__ import annotations

import base64
import math

from axes.helpers import get_client_username
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance.authority.decorators import administrator_required
from governance.exceptions import GovernanceError
from governance.identity import feeds, lockouts, stepup
from governance.identity import services as identity
from governance.identity.forms import ScimTokenForm, ScimTokenRevokeForm, StepUpCodeForm
from governance.identity.lockouts import unlock_account
from governance.identity.models import ScimToken
from governance.ledger.models import LedgerEntry
from governance.people.forms import ProfileForm
from governance.people.services import update_profile

PAGE_SIZE = 50


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """Working hours, time zone and the step-up authenticator."""
    action = request.POST.get("action") if request.method == "POST" else None
    profile_form = ProfileForm(request.POST if action == "profile" else None, instance=request.user)
    code_form = StepUpCodeForm(request.POST if action == "confirm" else None)
    if action == "profile" and profile_form.is_valid():
        update_profile(user=request.user, **profile_form.cleaned_data)
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
    if action == "calendar_feed":
        return _replace_calendar_feed(request)
    return render(
        request,
        "governance/identity/profile.html",
        _profile_context(request, profile_form, code_form),
        status=400 if action and (profile_form.errors or code_form.errors) else 200,
    )


def _replace_calendar_feed(request: HttpRequest) -> HttpResponse:
    """Issue the person's calendar feed URL, or replace it once they confirm (the old stops)."""
    replacing = feeds.feed_key(request.user) is not None
    if replacing and request.POST.get("confirm") != "replace":
        messages.error(request, "Tick the box to confirm: the current feed URL will stop working.")
        return redirect(f"{reverse('governance:profile')}#calendar-feed")
    feeds.issue_feed_key(user=request.user, actor=request.user)
    done = "replaced; the previous URL no longer works" if replacing else "issued"
    messages.success(request, f"Calendar feed URL {done}.")
    return redirect(f"{reverse('governance:profile')}#calendar-feed")


def _profile_context(request: HttpRequest, profile_form, code_form) -> dict:
    device = stepup.confirmed_device(request.user)
    pending = None if device else stepup.pending_device(request.user)
    key = feeds.feed_key(request.user)
    return {
        "calendar_feed_url": feeds.feed_url(key) if key else "",
        "profile_form": profile_form,
        "code_form": code_form,
        "device": device,
        "qr_svg": stepup.qr_svg(pending) if pending else "",
        "secret": base64.b32encode(pending.bin_key).decode() if pending else "",
    }


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
    return render(request, "governance/identity/scim_tokens.html", context, status=status)


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
    response = render(request, "governance/identity/locked_out.html", {"until": until}, status=429)
    if until is not None:
        response["Retry-After"] = str(max(1, math.ceil((until - timezone.now()).total_seconds())))
    return response


@administrator_required
@require_GET
def lockout_list(request: HttpRequest) -> HttpResponse:
    """Usernames and addresses locked out of sign-in now, each with an unlock form."""
    page = Paginator(lockouts.current_lockouts(), PAGE_SIZE).get_page(request.GET.get("page"))
    history = LedgerEntry.objects.filter(kind__in=["auth.locked_out", "auth.unlocked"])
    context = {
        "page": page,
        "lockouts": page.object_list,
        "history": history.order_by("-seq")[:15],
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cool_off_minutes": _minutes(settings.AXES_COOLOFF_TIME),
    }
    return render(request, "governance/identity/lockouts.html", context)


def _minutes(duration) -> int | None:
    return int(duration.total_seconds() // 60) if duration else None


@administrator_required
@require_POST
def lockout_unlock(request: HttpRequest) -> HttpResponse:
    username, ip = request.POST.get("username", ""), request.POST.get("ip", "")
    try:
        failures = unlock_account(
            username=username, ip=ip, actor=request.user, reason=request.POST.get("reason", "")
        )
    except GovernanceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Unlocked {username or ip}: {failures} failed sign-ins cleared.")
    return redirect("governance:lockout_list")

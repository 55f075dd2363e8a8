"""ServiceNow's inbound endpoint (token first, then the body; nothing changes on a refusal)
and the administrators' ServiceNow page."""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from changes.exceptions import InvalidIncident
from changes.incidents.services import map_external_service
from changes.servicenow import payloads, selectors, services
from changes.servicenow.forms import MappingForm, TokenForm
from governance.api.parsers import UnsafeJSON, load_json
from governance.authority.decorators import administrator_required
from governance.exceptions import GovernanceError


def _error(code: str, message: str, status: int, fields: dict | None = None) -> JsonResponse:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return JsonResponse(body, status=status)


@csrf_exempt
@require_POST
def inbound(request: HttpRequest) -> JsonResponse:
    """`Authorization: Bearer <token>`; change_request and incident records as the Table API
    shapes them (see `payloads.records_in` for the accepted bodies)."""
    refused = _refused_token(request.headers.get("Authorization", ""))
    if refused:
        return refused
    try:
        payload = load_json(request.body.decode())
    except RequestDataTooBig:
        return _error("payload_too_large", "The request body is too large.", 413)
    except UnsafeJSON as exc:
        return _error(exc.code, exc.message, 400)
    except (UnicodeDecodeError, ValueError):
        return _error("invalid", "The body is not JSON.", 400)
    try:
        applied = services.apply_records(payloads.records_in(payload))
    except GovernanceError as exc:
        return _error(exc.code, exc.message, exc.status, exc.fields)
    counts = Counter(item.outcome for item in applied)
    return JsonResponse(
        {
            "status": applied[0].outcome if len(applied) == 1 else "applied",
            "counts": {outcome: counts[outcome] for outcome in services.OUTCOMES},
            "results": [item.as_dict() for item in applied],
        }
    )


def _refused_token(header: str) -> JsonResponse | None:
    scheme, _, token = header.partition(" ")
    config = services.current_config()
    if config is None or not config.token_digest:
        return _error("not_configured", "The ServiceNow integration has no token yet.", 401)
    if scheme.lower() != "bearer" or not token.strip():
        return _error("token_missing", "Send Authorization: Bearer <token>.", 401)
    if not services.token_matches(token.strip()):
        return _error("token_invalid", "The token is not the one issued for ServiceNow.", 401)
    return None


@never_cache  # the answer to a token request shows the token: never keep it in a cache
@administrator_required
@require_http_methods(["GET", "POST"])
def servicenow_settings(request: HttpRequest) -> HttpResponse:
    """Administrators issue ServiceNow's token and map its CIs to the catalogue."""
    forms = {"token": TokenForm(prefix="token"), "mapping": MappingForm(prefix="mapping")}
    action, token = request.POST.get("action"), None
    if request.method == "POST" and action in forms:
        form = forms[action] = type(forms[action])(request.POST, prefix=action)
        if form.is_valid() and action == "token":
            # Shown in this answer only (not through a redirect and a message, which would
            # keep it in the session store).
            token = services.issue_token(actor=request.user.username, **form.cleaned_data)
        elif form.is_valid() and _mapped(form, request.user.username):
            messages.success(request, "Saved; the ledger records it.")
            return redirect("changes-servicenow:settings")
    context = {
        **selectors.settings_context(),
        "token": token,
        "token_form": forms["token"],
        "mapping_form": forms["mapping"],
        "endpoint_url": f"{settings.SITE_URL}/integrations/servicenow/",
    }
    refused = request.method == "POST" and token is None  # a POST that gets here saved nothing
    return render(
        request, "changes/servicenow/settings.html", context, status=400 if refused else 200
    )


def _mapped(form: MappingForm, actor: str) -> bool:
    data = form.cleaned_data
    try:
        map_external_service(
            source="servicenow",
            external_id=data["external_id"],
            service=data["service"],
            actor=actor,
            reason=data["reason"],
        )
    except InvalidIncident as exc:
        form.add_error(None, exc.message)
        return False
    return True

"""The PagerDuty V3 webhook (signature first, then the event; nothing changes on a refusal) and
the administrators' PagerDuty page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from changes.exceptions import InvalidIncident
from changes.incidents import services
from changes.incidents.forms import MappingForm, SecretsForm
from changes.incidents.models import ExternalServiceMapping, IntegrationConfig
from changes.incidents.signatures import valid_pagerduty_signature
from governance.api.parsers import UnsafeJSON, load_json
from governance.authority.decorators import administrator_required


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


@csrf_exempt
@require_POST
def pagerduty_webhook(request: HttpRequest) -> JsonResponse:
    """Verify `X-PagerDuty-Signature` over the raw body, drop redeliveries, record the incident."""
    try:
        body = request.body  # read once: the signature covers these exact bytes
    except RequestDataTooBig:
        return _error("payload_too_large", "The request body is too large.", 413)
    header = request.headers.get("X-PagerDuty-Signature", "")
    secrets = services.signing_secrets("pagerduty")
    if not secrets:
        return _error("not_configured", "The PagerDuty integration is not configured.", 401)
    if not header:
        return _error("signature_missing", "X-PagerDuty-Signature header is missing.", 401)
    if not valid_pagerduty_signature(header, body, secrets):
        return _error(
            "signature_invalid",
            "X-PagerDuty-Signature does not match any configured secret (v1=HMAC-SHA256).",
            401,
        )
    try:
        payload = load_json(body.decode())
    except UnsafeJSON as exc:
        return _error("invalid", exc.message, 400)
    except (UnicodeDecodeError, ValueError):
        return _error("invalid", "The body is not JSON.", 400)
    try:
        outcome = services.ingest_pagerduty_event(
            delivery_id=request.headers.get("X-Webhook-Id", ""), payload=payload
        )
    except InvalidIncident as exc:
        return _error(exc.code, exc.message, 400)
    return JsonResponse({"status": outcome})


FORMS = {"secrets": SecretsForm, "mapping": MappingForm}


@administrator_required
@require_http_methods(["GET", "POST"])
def pagerduty_settings(request: HttpRequest) -> HttpResponse:
    """Administrators set PagerDuty's signing secrets and map its services to the catalogue."""
    forms = {name: form(prefix=name) for name, form in FORMS.items()}
    action = request.POST.get("action")
    if request.method == "POST" and action in FORMS:
        form = forms[action] = FORMS[action](request.POST, prefix=action)
        if form.is_valid() and _saved(form, request.user.username):
            messages.success(request, "Saved; the ledger records it.")
            return redirect("changes-incidents:pagerduty")
    config = IntegrationConfig.objects.filter(source="pagerduty").first()
    context = {
        "masked_secrets": config.masked_secrets if config else [],
        "mappings": ExternalServiceMapping.objects.filter(source="pagerduty")
        .select_related("service")
        .order_by("external_id"),
        "secrets_form": forms["secrets"],
        "mapping_form": forms["mapping"],
        "webhook_url": f"{settings.SITE_URL}/integrations/pagerduty/",
    }
    refused = request.method == "POST"  # a POST that gets here saved nothing
    return render(
        request, "changes/incidents/pagerduty.html", context, status=400 if refused else 200
    )


def _saved(form, actor: str) -> bool:
    """Call the one service the form is for; a refusal becomes the form's error."""
    data = form.cleaned_data
    try:
        if isinstance(form, SecretsForm):
            services.configure_integration(
                source="pagerduty", secrets=data["secrets"], actor=actor, reason=data["reason"]
            )
        else:
            services.map_external_service(
                source="pagerduty",
                external_id=data["external_id"],
                service=data["service"],
                actor=actor,
                reason=data["reason"],
            )
    except InvalidIncident as exc:
        form.add_error(None, exc.message)
        return False
    return True

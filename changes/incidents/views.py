"""The PagerDuty V3 webhook: signature first, then the event; nothing changes on a refusal."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from changes.exceptions import InvalidIncident
from changes.incidents import services
from changes.incidents.signatures import valid_pagerduty_signature
from governance.api.parsers import UnsafeJSON, load_json


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


@csrf_exempt
@require_POST
def pagerduty_webhook(request: HttpRequest) -> JsonResponse:
    """Verify `X-PagerDuty-Signature` over the raw body, drop redeliveries, record the incident."""
    body = request.body  # read once: the signature covers these exact bytes
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

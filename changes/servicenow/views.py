"""ServiceNow's inbound endpoint (token first, then the body; nothing changes on a refusal)."""

from __future__ import annotations

from collections import Counter

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from changes.servicenow import payloads, services
from governance.api.parsers import UnsafeJSON, load_json
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

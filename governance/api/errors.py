"""One error shape for the whole API: {"error": {"code", "message", "fields"}}; never HTML."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from governance.exceptions import GovernanceError


def error_response(code: str, message: str, http_status: int, fields: dict | None = None) -> Response:
    return Response(
        {"error": {"code": code, "message": message, "fields": fields or {}}}, status=http_status
    )


def exception_handler(exc, context):
    """Map DRF, Django and domain exceptions to the API's error document."""
    if isinstance(exc, GovernanceError):
        return error_response(exc.code, exc.message, exc.status, exc.fields)
    if isinstance(exc, RequestDataTooBig):
        return error_response(
            "payload_too_large", "The request body is too large.",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return error_response("invalid", _summary(fields), response.status_code, fields)
    code = exc.default_code if isinstance(exc, exceptions.APIException) else "error"
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else code
    detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
    error = error_response(code, str(detail), response.status_code)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            error[header] = response[header]
    return error


def _summary(fields: dict) -> str:
    parts = []
    for name, messages in fields.items():
        first = messages[0] if isinstance(messages, list) and messages else messages
        if isinstance(first, dict):
            first = "; ".join(f"{k}: {v[0] if isinstance(v, list) else v}" for k, v in first.items())
        parts.append(f"{name}: {first}" if name != "non_field_errors" else str(first))
    return "Invalid input. " + " ".join(parts)

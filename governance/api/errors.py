"""One error shape for the whole API: {"error": {"code", "message", "fields"}}; never HTML."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found as django_page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from governance.api.parsers import RefusedBody
from governance.exceptions import GovernanceError
from governance.unavailable import MACHINE_PREFIXES


def error_response(
    code: str, message: str, http_status: int, fields: dict | None = None
) -> Response:
    return Response(
        {"error": {"code": code, "message": message, "fields": fields or {}}}, status=http_status
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 404 handler (config/urls.py). A path no URL matches (`/api/v1/releases/abc/`) never
    reaches DRF, so without this a program would get the HTML page instead of the error document."""
    if request.path.startswith(MACHINE_PREFIXES):
        body = {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}
        return JsonResponse(body, status=404)
    return django_page_not_found(request, exception)


def exception_handler(exc, context):
    """Map DRF, Django and domain exceptions to the API's error document."""
    if isinstance(exc, GovernanceError):
        return error_response(exc.code, exc.message, exc.status, exc.fields)
    if isinstance(exc, RequestDataTooBig):
        return error_response(
            "payload_too_large",
            "The request body is too large.",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, RefusedBody):
        # Deep nesting, NUL, lone surrogates: the field path travels in `fields`.
        return error_response(exc.get_codes(), exc.message, exc.status_code, exc.fields)
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
    parts = (_first_error({name: messages}, "") for name, messages in fields.items())
    return "Invalid input. " + " ".join(part for part in parts if part)


def _first_error(errors: object, path: str) -> str | None:
    """`path: message` for the first message in DRF's nested errors (`artifact.digest: ...`).

    Nested serializers give dicts and lists of them; a valid item in a list is an empty dict.
    """
    if isinstance(errors, dict):
        children = [(_join(path, key), value) for key, value in errors.items()]
    elif isinstance(errors, list):
        children = [(path, value) for value in errors]
    else:
        return f"{path}: {errors}" if path else str(errors)
    found = (_first_error(value, child_path) for child_path, value in children)
    return next((text for text in found if text), None)


def _join(path: str, key: object) -> str:
    """The dotted field path; errors about the whole object keep their parent's path."""
    if key == "non_field_errors":
        return path
    return f"{path}.{key}" if path else str(key)

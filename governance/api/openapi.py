"""The API's error document in the OpenAPI schema, and the errors every operation can answer.

Views name the errors of their own rules (`errors(403, 404, 409)`); `add_common_errors`, a
drf-spectacular post-processing hook, adds those that come from the layers in front of every view
(authentication, the token throttle, the body parsers), so a client generated from the schema
knows every status it may meet.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema_field, inline_serializer
from rest_framework import serializers

ERROR_COMPONENT = "#/components/schemas/Error"

DESCRIPTIONS = {
    400: "Invalid input: `fields` names each field's problems.",
    401: "No token, or an invalid, revoked or expired one.",
    403: "Not allowed.",
    404: "No such object in your scope.",
    409: "Not possible in the object's current state.",
    413: "The request body is too large.",
    415: "The body is not JSON (send Content-Type: application/json).",
    429: "Too many failed tokens from your address: try again after Retry-After seconds.",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the address may try again.",
        "schema": {"type": "integer"},
    }
}


class ErrorSerializer(serializers.Serializer):
    """`{"error": {"code", "message", "fields"}}`: every non-2xx answer of the API."""

    error = inline_serializer(
        name="ErrorDetail",
        fields={
            "code": serializers.CharField(
                help_text="Stable machine code: invalid, not_found, self_approval_forbidden, "
                "invalid_transition, throttled, ..."
            ),
            "message": serializers.CharField(help_text="For people, shown as-is."),
            "fields": serializers.DictField(
                help_text="Per field, its messages; nested like the input "
                '(`{"artifact": {"digest": ["..."]}}`). Empty when no field is at fault.'
            ),
        },
    )


@extend_schema_field(
    {"oneOf": [{"type": "string", "format": "uri"}, {"type": "string", "maxLength": 0}]}
)
class OptionalURLField(serializers.CharField):
    """A URL in an answer that may be empty: a model's `URLField(blank=True)`, which DRF would
    publish as a plain `uri` that `""` does not satisfy."""

    def __init__(self, **kwargs) -> None:
        super().__init__(read_only=True, **kwargs)


def errors(*statuses: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """Error responses for `extend_schema(responses=...)`; `descriptions` overrides the default
    wording per status, keyed `e403="..."`."""
    return {
        status: OpenApiResponse(
            ErrorSerializer, description=descriptions.get(f"e{status}", DESCRIPTIONS[status])
        )
        for status in statuses
    }


def _error(status: int) -> dict:
    response = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": ERROR_COMPONENT}}},
    }
    if status == 429:
        response["headers"] = RETRY_AFTER
    return response


def add_common_errors(result: dict, generator, request, public) -> dict:
    """drf-spectacular POSTPROCESSING_HOOKS entry: on every authenticated operation, 401 and 429
    (authentication runs before any view), and where a body is read, 400, 413 and 415 (the
    parsers). A view's own wording for a status wins."""
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            if not operation.get("security"):
                continue
            statuses = [401, 429]
            if "requestBody" in operation:
                statuses += [400, 413, 415]
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.setdefault(str(status), _error(status))
    return result

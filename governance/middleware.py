"""Request correlation ids: one id per request, echoed back and available to logs and tasks."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from django.core.signals import request_finished

_VALID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# The id of the request (or task) this thread is working for; None outside of one. Log lines
# and enqueued tasks read it from here, so no code has to pass the request around.
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class CorrelationIdMiddleware:
    """Takes the caller's X-Request-ID when it is a plain token, else makes one up."""

    header = "X-Request-ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(self.header, "")
        request.correlation_id = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        # Not reset when the middleware returns: Django logs 4xx/5xx responses after the whole
        # middleware chain, and a streamed body is produced later still. The request's end
        # (below) clears it.
        correlation_id.set(request.correlation_id)
        response = self.get_response(request)
        response[self.header] = request.correlation_id
        return response


def _forget_correlation_id(**kwargs) -> None:
    # Sent when the server closes the response: lines this thread logs between requests must
    # not carry the previous request's id.
    correlation_id.set(None)


request_finished.connect(_forget_correlation_id, dispatch_uid="forget_correlation_id")

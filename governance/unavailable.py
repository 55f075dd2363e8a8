"""A database outage answers 503 with Retry-After, never a bare 500 page.

When PostgreSQL restarts or fails over, whatever needs it raises OperationalError or
InterfaceError: a view, or a middleware before it (the session, the signed-in user, the audit
log's actor). Each service's write is one transaction, so nothing half-written stays behind;
what is left is telling the caller, in words, that it is temporary and when to try again.

This is the project's 500 handler (config/urls.py), since only that handler sees exceptions
raised inside other middleware. The connection pool checks each connection before handing it
out, so the first request after the database is back gets a fresh one: nothing is restarted.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.defaults import server_error as django_server_error

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30
MESSAGE = "Signoff cannot reach its database right now. Nothing was changed: try again in a minute."
# Callers that are programs read the API's error document, never an HTML page.
MACHINE_PREFIXES = ("/api/", "/scim/", "/integrations/")


def server_error(request: HttpRequest) -> HttpResponse:
    """The 500 handler: a 503 when the exception being handled is the database's, otherwise
    Django's own 500 page (templates/500.html)."""
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        return unavailable_response(request)
    return django_server_error(request)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 for `request`: built without touching the database (no context processors, no
    session, no user), since that is what is missing."""
    if request.path.startswith(MACHINE_PREFIXES):
        response = JsonResponse(
            {"error": {"code": "unavailable", "message": MESSAGE, "fields": {}}}, status=503
        )
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response

"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

from celery import current_app
from django.contrib.staticfiles.storage import staticfiles_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# What base.html, the Django admin and the API docs link to: if the static files manifest cannot
# name these, those pages answer 500 while the database and broker look fine.
PAGE_ASSETS = (
    "vendor/bootstrap/bootstrap.min.css",
    "vendor/bootstrap-icons/bootstrap-icons.min.css",
    "css/signoff.css",
    "vendor/bootstrap/bootstrap.bundle.min.js",
    "vendor/htmx/htmx.min.js",
    "admin/css/base.css",
    "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# Checks without which pages cannot be served: the pod leaves the load balancer when one fails.
# The broker is not one of them: requests and decisions go on without it (outbound work waits in
# the outbox), so a Redis outage reports "degraded" and keeps every web process in service.
REQUIRED_CHECKS = ("database", "static")


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database answers and the static files resolve; the broker's state is
    reported ("degraded" while it is unreachable) but never makes the process unready."""
    checks = {
        "database": _database_check(),
        "broker": _broker_check(),
        "static": _static_assets_check(),
    }
    if any(checks[name] != "ok" for name in REQUIRED_CHECKS):
        return JsonResponse({"status": "unavailable", "checks": checks}, status=503)
    status = "ok" if checks["broker"] == "ok" else "degraded"
    return JsonResponse({"status": status, "checks": checks})


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _broker_check() -> str:
    app = current_app  # the project's Celery app, set up by the config package at start-up
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _static_assets_check() -> str:
    """Return "ok" if every asset the pages link to resolves as the {% static %} tag would."""
    for name in PAGE_ASSETS:
        try:
            staticfiles_storage.url(name)
        except ValueError:  # The manifest storage's "Missing staticfiles manifest entry".
            return f"error: {name} is not in the static files manifest (run collectstatic)"
    return "ok"

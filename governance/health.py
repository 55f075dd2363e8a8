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


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database answers and the broker accepts a connection."""
    app = current_app  # the project's Celery app, set up by the config package at start-up
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {exc.__class__.__name__}"
    checks["static"] = _static_assets_check()
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def _static_assets_check() -> str:
    """Return "ok" if every asset the pages link to resolves as the {% static %} tag would."""
    for name in PAGE_ASSETS:
        try:
            staticfiles_storage.url(name)
        except ValueError:  # The manifest storage's "Missing staticfiles manifest entry".
            return f"error: {name} is not in the static files manifest (run collectstatic)"
    return "ok"

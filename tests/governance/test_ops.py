"""Operational endpoints, the OpenAPI schema and its docs page."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_readyz_checks_database_and_broker(client):
    if not settings.REDIS_URL:  # The embedded broker's folders exist once `make run` made them.
        for folder in ("queue", "processed", "control", "results"):
            (settings.CELERY_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "static": "ok"},
    }


@pytest.mark.django_db
def test_readyz_fails_when_pages_cannot_find_their_static_assets(client, tmp_path):
    # Production storage without a collected manifest: every page would answer 500.
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    with override_settings(STORAGES=storages, STATIC_ROOT=tmp_path):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["static"] == (
        "error: vendor/bootstrap/bootstrap.min.css is not in the static files manifest "
        "(run collectstatic)"
    )


def test_a_valid_request_id_is_echoed_and_a_junk_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="ci-run-42")["X-Request-ID"] == "ci-run-42"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"]
    assert replaced != "<script>" and len(replaced) == 32


@pytest.mark.django_db
def test_openapi_schema_is_valid_and_documents_the_pipeline_paths(client):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in (
        "/api/v1/releases/",
        "/api/v1/releases/{id}/gate",
        "/api/v1/releases/{id}/evidence/",
        "/api/v1/releases/{id}/decisions/",
        "/api/v1/releases/{id}/deployments/",
    ):
        assert path in schema["paths"], path
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }


@pytest.mark.django_db
def test_api_docs_load_nothing_from_a_cdn(client):
    body = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in body
    assert "cdn" not in body.lower()


@pytest.mark.django_db
def test_api_docs_answer_options_with_405_not_a_server_error(client):
    response = client.options("/api/docs/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"

"""Health reports through the pipeline API: `POST /api/v1/releases/<id>/deployments/<id>/health/`,
allowed to whoever may report the deployment, inside the verification window only."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import Deployment
from approvals.verification import polling
from approvals.verification.models import HealthCheck
from changes.reviews.models import Review
from governance.models import LedgerEntry
from governance.notifications import outbox
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployment(approved_release, deploy, stub) -> Deployment:
    return deploy(approved_release, rollback_url=stub.url("/rollback"))


def health_path(deployment: Deployment, release_id: int | None = None) -> str:
    release_id = release_id or deployment.release_id
    return f"/api/v1/releases/{release_id}/deployments/{deployment.pk}/health/"


@pytest.mark.parametrize(
    ("who", "code"),
    [
        (None, 401),  # anonymous
        ("outsider", 404),  # no role anywhere
        ("other_service_approver", 404),  # a role, on another service
        ("auditor", 404),  # sees everything, reports nothing
        ("approver", 404),  # may decide, may not report deployments
        ("pipeline_bot", 201),
        ("requester", 201),  # a release manager of the service
    ],
)
def test_health_reports_follow_the_deployment_report_s_permissions(
    api, request, deployment, other_service_approver, auditor, who, code
):
    client = api(request.getfixturevalue(who) if who else None)
    counts = factories.state_counts()

    response = client.post(health_path(deployment), {"healthy": True, "detail": "smoke ok"})

    assert response.status_code == code
    # The deployments endpoint answers the same to the same person.
    same = client.post(f"/api/v1/releases/{deployment.release_id}/deployments/", {"status": "x"})
    assert same.status_code == (400 if code == 201 else code)
    if code != 201:
        assert response.json()["error"]["code"] in ("not_authenticated", "not_found")
        assert factories.state_counts() == counts
        assert HealthCheck.objects.count() == 0


def test_a_healthy_report_is_recorded_and_ledgered(api, pipeline_bot, deployment):
    response = api(pipeline_bot).post(
        health_path(deployment), {"healthy": True, "detail": "smoke tests passed"}
    )

    assert response.status_code == 201
    body = response.json()
    assert body["check"]["source"] == "report"
    assert (body["check"]["healthy"], body["check"]["detail"]) == (True, "smoke tests passed")
    assert body["check"]["reported_by"] == "ci-bot"
    assert body["deployment"]["verification"] == "verifying"
    entry = LedgerEntry.objects.filter(kind="deployment.health_reported").get()
    assert entry.actor == "ci-bot"
    assert entry.payload == {
        "deployment": deployment.pk,
        "healthy": True,
        "detail": "smoke tests passed",
    }


def test_an_unhealthy_report_fails_the_deployment_and_rolls_back_once(
    api, pipeline_bot, deployment, stub
):
    response = api(pipeline_bot).post(
        health_path(deployment), {"healthy": False, "detail": "error rate 12%"}
    )

    assert response.status_code == 201
    assert response.json()["deployment"]["status"] == "failed"
    assert response.json()["deployment"]["verification"] == "failed"
    deployment.refresh_from_db()
    assert deployment.verification_detail == "reported unhealthy by ci-bot: error rate 12%"
    entry = LedgerEntry.objects.get(kind="deployment.verification_failed")
    assert entry.actor == "ci-bot"
    assert Review.objects.get().trigger == "deployment_failed"
    assert outbox.deliver_due() == 1
    assert outbox.deliver_due() == 0
    (hook,) = stub.received("POST", "/rollback")
    assert json.loads(hook.body)["reason"] == (
        "Post-deploy verification failed: reported unhealthy by ci-bot: error rate 12%"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "healthy"),
        ({"healthy": "maybe"}, "healthy"),
        ({"healthy": None}, "healthy"),
        ({"healthy": True, "detail": "x" * 501}, "detail"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_written(
    api, pipeline_bot, deployment, body, field
):
    client = api(pipeline_bot)
    counts = factories.state_counts()

    response = client.post(health_path(deployment), body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert factories.state_counts() == counts
    assert HealthCheck.objects.count() == 0


def test_a_deployment_of_another_release_is_not_found(
    api, pipeline_bot, deployment, low_tier_service, production
):
    from approvals import services

    other, _ = services.request_approval(
        data=factories.release_input(low_tier_service, production), actor=pipeline_bot
    )

    response = api(pipeline_bot).post(health_path(deployment, other.pk), {"healthy": False})

    assert response.status_code == 404
    assert Deployment.objects.get(pk=deployment.pk).verification == "verifying"


def test_a_report_without_a_window_is_a_409(api, pipeline_bot, low_tier_service, production):
    from approvals import services

    release, _ = services.request_approval(
        data=factories.release_input(low_tier_service, production), actor=pipeline_bot
    )
    unwatched = services.record_deployment(release=release, actor=pipeline_bot, status="succeeded")
    client = api(pipeline_bot)
    counts = factories.state_counts()

    response = client.post(health_path(unwatched), {"healthy": False})

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "verification_closed",
        "message": "This deployment is not being verified: its release's policy asks for no "
        "health.",
        "fields": {},
    }
    assert factories.state_counts() == counts
    assert Deployment.objects.get(pk=unwatched.pk).status == "succeeded"


def test_a_report_after_the_window_ended_is_a_409(api, pipeline_bot, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(
        verify_until=timezone.now() - timedelta(seconds=1)
    )
    client = api(pipeline_bot)
    counts = factories.state_counts()

    response = client.post(health_path(deployment), {"healthy": False})

    assert response.status_code == 409
    assert "The verification window ended at" in response.json()["error"]["message"]
    assert factories.state_counts() == counts
    assert Deployment.objects.get(pk=deployment.pk).status == "succeeded"


def test_a_report_after_verification_was_decided_is_a_409(api, pipeline_bot, deployment):
    client = api(pipeline_bot)
    client.post(health_path(deployment), {"healthy": False, "detail": "down"})
    counts = factories.state_counts()

    response = client.post(health_path(deployment), {"healthy": True})

    assert response.status_code == 409
    assert "already decided (failed" in response.json()["error"]["message"]
    assert factories.state_counts() == counts
    assert HealthCheck.objects.count() == 1


def test_a_report_keeps_an_otherwise_silent_window_from_being_unverified(
    api, pipeline_bot, deployment
):
    api(pipeline_bot).post(health_path(deployment), {"healthy": True})

    polling.verify_due(deployment.verify_until)

    deployment.refresh_from_db()
    assert deployment.verification == "passed"
    assert deployment.verification_detail == "1 health check(s) in 15 minutes, all healthy."


def test_the_deployments_api_takes_a_rollback_url_and_shows_the_window(
    api, pipeline_bot, approved_release
):
    client = api(pipeline_bot)
    path = f"/api/v1/releases/{approved_release.pk}/deployments/"

    refused = client.post(path, {"status": "succeeded", "rollback_url": "ftp://ci/rollback"})
    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["rollback_url"]
    assert not Deployment.objects.exists()

    response = client.post(
        path, {"status": "succeeded", "rollback_url": "https://ci.example.com/job/7/rollback"}
    )

    assert response.status_code == 201
    shown = response.json()["deployment"]
    assert shown["rollback_url"] == "https://ci.example.com/job/7/rollback"
    assert shown["verification"] == "verifying"
    deployment = Deployment.objects.get()
    assert shown["verify_until"] == deployment.verify_until.isoformat().replace("+00:00", "Z")


def test_the_endpoint_is_in_the_openapi_schema(client, administrator):
    client.force_login(administrator)

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    text = schema.content.decode()
    assert "/api/v1/releases/{id}/deployments/{deployment_id}/health/" in text
    assert "verification_closed" in text or "409" in text

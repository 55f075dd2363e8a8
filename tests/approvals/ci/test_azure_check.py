"""Azure DevOps "Invoke REST API" checks in callback mode: acknowledged at once, answered with
one TaskCompleted event on the job's plan when the gate decides, through the outbox."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from approvals import services
from approvals.pipelines import answers
from approvals.pipelines.models import PipelineWait
from governance.ledger.models import LedgerEntry
from governance.models import Role
from governance.notifications import outbox
from governance.notifications.models import Delivery
from tests import factories
from tests.approvals.ci.conftest import (
    AUTH_TOKEN,
    JOB_ID,
    PLAN_ID,
    PROJECT_ID,
    TASK_ID,
    TIMELINE_ID,
    check_headers,
)

pytestmark = pytest.mark.django_db
RUN_URL = (
    "https://dev.azure.com/acme/2e4c6a8b-0d1f-4e3a-9b5c-7d9f1a3c5e55/_build/results?buildId=812"
)
EVENTS_PATH = (
    f"/acme/{PROJECT_ID}/_apis/distributedtask/hubs/build/plans/{PLAN_ID}/events"
    "?api-version=2.0-preview.1"
)
BASIC = "Basic " + base64.b64encode(f":{AUTH_TOKEN}".encode()).decode()


@pytest.fixture
def release(org, service, production, pipeline_bot):
    """dave's payments-api release to production, requested by an Azure pipeline run."""
    release, _ = services.request_approval(
        data=factories.release_input(
            service,
            production,
            triggered_by="dave",
            pipeline_provider="azure",
            pipeline_run_url=RUN_URL,
        ),
        actor=pipeline_bot,
    )
    return release


def approve(release, *people) -> None:
    for person in people:
        factories.decide(release, person)


def check(client, release, token: str, plan_url: str, **headers):
    return client.post(
        f"/integrations/azure/releases/{release.pk}/check",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        **check_headers(plan_url, **headers),
    )


def ledger_kinds(release) -> list[str]:
    return list(
        LedgerEntry.objects.filter(subject=f"release:{release.pk}", kind__startswith="pipeline.")
        .order_by("seq")
        .values_list("kind", flat=True)
    )


def test_a_check_is_acknowledged_at_once_and_waits_for_the_gate(
    client, release, pipeline_token, azure_devops
):
    response = check(client, release, pipeline_token, azure_devops.plan_url)

    assert response.status_code == 200
    assert response.json() == {
        "status": "acknowledged",
        "release": release.pk,
        "gate": "pending",
        "answer": "",
    }
    wait = PipelineWait.objects.get()
    assert (wait.provider, wait.release_id, wait.external_id, wait.state) == (
        "azure",
        release.pk,
        f"{PLAN_ID}:{TASK_ID}",
        "waiting",
    )
    assert wait.callback == {
        "plan_url": azure_devops.plan_url,
        "project_id": PROJECT_ID,
        "hub_name": "build",
        "plan_id": PLAN_ID,
        "job_id": JOB_ID,
        "timeline_id": TIMELINE_ID,
        "task_instance_id": TASK_ID,
    }
    assert wait.credentials == {"auth_token": AUTH_TOKEN}
    assert wait.run_url == RUN_URL
    assert ledger_kinds(release) == ["pipeline.wait_registered"]
    assert Delivery.objects.count() == 0
    assert azure_devops.received == []


def test_approval_sends_one_task_completed_to_the_plan_with_the_jobs_token(
    client, release, pipeline_token, azure_devops, approver, second_approver, cab_member
):
    check(client, release, pipeline_token, azure_devops.plan_url)

    approve(release, approver, second_approver, cab_member)
    delivered = outbox.deliver_due(timezone.now())
    outbox.deliver_due(timezone.now() + timedelta(hours=2))

    assert delivered == 1
    assert len(azure_devops.received) == 1
    sent = azure_devops.received[0]
    delivery = Delivery.objects.get()
    assert (sent.method, sent.path) == ("POST", EVENTS_PATH)
    assert sent.json() == {
        "name": "TaskCompleted",
        "taskId": TASK_ID,
        "jobId": JOB_ID,
        "result": "succeeded",
    }
    assert sent.headers["Authorization"] == BASIC
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-Signoff-Delivery"] == str(delivery.delivery_id)
    assert (delivery.channel, delivery.kind, delivery.status) == (
        "azure",
        "pipeline.approved",
        "delivered",
    )
    wait = PipelineWait.objects.get()
    assert (wait.state, wait.answer, wait.credentials) == ("answered", "approved", {})
    assert ledger_kinds(release) == ["pipeline.wait_registered", "pipeline.answer_queued"]


def test_a_rejection_fails_the_check(client, release, pipeline_token, azure_devops, approver):
    check(client, release, pipeline_token, azure_devops.plan_url)

    factories.decide(release, approver, verdict="reject", rationale="Limits are wrong.")
    outbox.deliver_due(timezone.now())

    assert [sent.json()["result"] for sent in azure_devops.received] == ["failed"]
    assert PipelineWait.objects.get().answer == "rejected"


def test_a_release_already_approved_is_answered_as_the_check_arrives(
    client, release, pipeline_token, azure_devops, approver, second_approver, cab_member
):
    approve(release, approver, second_approver, cab_member)

    response = check(client, release, pipeline_token, azure_devops.plan_url)
    outbox.deliver_due(timezone.now())

    assert response.status_code == 200
    assert response.json()["gate"] == "approved"
    assert response.json()["answer"] == "approved"
    assert [sent.json()["result"] for sent in azure_devops.received] == ["succeeded"]


def test_a_retry_after_a_500_sends_the_same_event_with_the_same_delivery_id(
    client, release, pipeline_token, azure_devops, approver, second_approver, cab_member
):
    azure_devops.statuses = [500, 200]
    check(client, release, pipeline_token, azure_devops.plan_url)
    approve(release, approver, second_approver, cab_member)
    now = timezone.now()

    first = outbox.deliver_due(now)
    too_soon = outbox.deliver_due(now + timedelta(seconds=30))
    retried = outbox.deliver_due(now + timedelta(minutes=2))

    assert (first, too_soon, retried) == (0, 0, 1)
    assert len(azure_devops.received) == 2
    one, two = azure_devops.received
    assert one.headers["X-Signoff-Delivery"] == two.headers["X-Signoff-Delivery"]
    assert one.body == two.body
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_a_wait_already_answered_is_not_answered_twice(
    client, release, pipeline_token, azure_devops, approver, second_approver, cab_member
):
    check(client, release, pipeline_token, azure_devops.plan_url)
    approve(release, approver, second_approver, cab_member)
    wait = PipelineWait.objects.get()

    again = answers.answer_release(release.pk)
    resent = check(client, release, pipeline_token, azure_devops.plan_url)
    outbox.deliver_due(timezone.now())

    assert again == 0
    assert resent.status_code == 200
    assert resent.json()["answer"] == "approved"
    assert PipelineWait.objects.get().pk == wait.pk
    assert Delivery.objects.count() == 1
    assert len(azure_devops.received) == 1
    assert ledger_kinds(release) == ["pipeline.wait_registered", "pipeline.answer_queued"]


def test_the_same_check_sent_again_keeps_one_wait(client, release, pipeline_token, azure_devops):
    check(client, release, pipeline_token, azure_devops.plan_url)

    response = check(client, release, pipeline_token, azure_devops.plan_url)

    assert response.status_code == 200
    assert PipelineWait.objects.count() == 1
    assert ledger_kinds(release) == ["pipeline.wait_registered"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic " + base64.b64encode(b"azure:not-a-token").decode()],
    ids=["missing", "wrong-bearer", "wrong-basic"],
)
def test_a_check_without_a_valid_signoff_token_is_refused_and_writes_nothing(
    client, release, azure_devops, authorization
):
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    counts = factories.state_counts()

    response = client.post(
        f"/integrations/azure/releases/{release.pk}/check",
        content_type="application/json",
        **check_headers(azure_devops.plan_url),
        **extra,
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] in ("not_authenticated", "authentication_failed")
    assert factories.state_counts() == counts
    assert PipelineWait.objects.count() == 0
    assert Delivery.objects.count() == 0


def test_permission_matrix_of_the_check(client, release, azure_devops, outsider, other_service):
    """No role and out of scope get 404 (nothing confirms the release exists); the pipeline's
    token is allowed, as a bearer token or as a Generic service connection's password."""
    scoped_elsewhere = factories.UserFactory(username="billing-bot")
    factories.grant(scoped_elsewhere, Role.RELEASE_MANAGER, other_service)
    counts = factories.state_counts()

    nobody = check(client, release, factories.token_for(outsider), azure_devops.plan_url)
    elsewhere = check(client, release, factories.token_for(scoped_elsewhere), azure_devops.plan_url)

    assert (nobody.status_code, elsewhere.status_code) == (404, 404)
    assert factories.state_counts() == counts
    assert PipelineWait.objects.count() == 0

    token = factories.token_for(release.requested_by)
    basic = "Basic " + base64.b64encode(f"azure-devops:{token}".encode()).decode()
    allowed = client.post(
        f"/integrations/azure/releases/{release.pk}/check",
        content_type="application/json",
        HTTP_AUTHORIZATION=basic,
        **check_headers(azure_devops.plan_url),
    )
    assert allowed.status_code == 200
    assert PipelineWait.objects.count() == 1


@pytest.mark.parametrize(
    ("header", "value", "field"),
    [
        ("AuthToken", None, "AuthToken"),
        ("PlanId", "not-a-guid", "PlanId"),
        ("HubName", "elsewhere", "HubName"),
        ("TaskInstanceId", "", "TaskInstanceId"),
        ("PlanUrl", "https://attacker.example.com/acme/", "PlanUrl"),
    ],
)
def test_malformed_check_headers_are_refused_and_nothing_is_written(
    client, release, pipeline_token, azure_devops, header, value, field
):
    counts = factories.state_counts()

    response = check(client, release, pipeline_token, azure_devops.plan_url, **{header: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert field in error["message"]
    assert factories.state_counts() == counts
    assert PipelineWait.objects.count() == 0


def test_a_plan_url_on_a_private_address_is_refused_unless_allowed(
    client, release, pipeline_token, azure_devops, settings
):
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = False

    response = check(client, release, pipeline_token, azure_devops.plan_url)

    assert response.status_code == 400
    assert "private address" in response.json()["error"]["fields"]["PlanUrl"][0]
    assert PipelineWait.objects.count() == 0


def test_the_check_finds_the_release_by_its_run_and_environment(
    client, release, pipeline_token, azure_devops
):
    response = client.post(
        "/integrations/azure/check",
        {"run_url": RUN_URL, "environment": "production"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {pipeline_token}",
        **check_headers(azure_devops.plan_url),
    )
    unknown = client.post(
        "/integrations/azure/check",
        {"run_url": RUN_URL, "environment": "staging"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {pipeline_token}",
        **check_headers(azure_devops.plan_url, PlanId="11111111-2222-3333-4444-555555555555"),
    )

    assert response.status_code == 200
    assert response.json()["release"] == release.pk
    assert unknown.status_code == 404
    assert PipelineWait.objects.count() == 1


def test_api_response_mode_reads_the_gate_of_the_runs_release(
    client, release, pipeline_token, approver, second_approver, cab_member
):
    url = f"/integrations/azure/gate?run_url={RUN_URL}&environment=production"
    pending = client.get(url, HTTP_AUTHORIZATION=f"Bearer {pipeline_token}")
    approve(release, approver, second_approver, cab_member)
    approved = client.get(url, HTTP_AUTHORIZATION=f"Bearer {pipeline_token}")
    anonymous = client.get(url)

    assert (pending.status_code, pending.json()["status"]) == (200, "pending")
    assert approved.json()["status"] == "approved"
    assert approved.json()["release"] == release.pk
    assert anonymous.status_code == 401


def test_a_queued_answer_is_not_sent_once_its_plan_url_stops_being_allowed(
    client, release, pipeline_token, azure_devops, approver, second_approver, cab_member, settings
):
    check(client, release, pipeline_token, azure_devops.plan_url)
    approve(release, approver, second_approver, cab_member)
    settings.SIGNOFF_AZURE_DEVOPS_HOSTS = ("dev.azure.com",)

    outbox.deliver_due(timezone.now())

    assert azure_devops.received == []
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    assert (
        delivery.last_error
        == "not sent: 127.0.0.1 is not an Azure DevOps host this Signoff answers."
    )


def test_anyone_can_download_the_client(client):
    response = client.get("/integrations/signoff-gate")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="signoff-gate"'
    body = b"".join(response.streaming_content)
    assert body == (Path(django_settings.BASE_DIR) / "tools" / "signoff-gate").read_bytes()
    assert body.startswith(b"#!/usr/bin/env python3\n")

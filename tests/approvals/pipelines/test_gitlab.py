"""POST /integrations/gitlab/: GitLab's deployment hook; a blocked deployment waits on the
release's gate and hears the decision through the deployment approval API."""

from __future__ import annotations

import pytest
from django.utils import timezone

from approvals.pipelines.models import InboundDelivery, PipelineWait
from governance.ledger.models import LedgerEntry
from governance.models import Delivery
from governance.notifications.outbox import deliver_due
from tests import factories
from tests.approvals.pipelines import payloads

pytestmark = pytest.mark.django_db
URL = "/integrations/gitlab/"


def post(client, document: dict, **headers):
    return client.post(
        URL,
        payloads.dumps(document),
        content_type="application/json",
        **payloads.gitlab_headers(**headers),
    )


def written() -> tuple[int, int, int, int]:
    return (
        PipelineWait.objects.count(),
        InboundDelivery.objects.count(),
        LedgerEntry.objects.count(),
        Delivery.objects.count(),
    )


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"token": "not-the-configured-token"}, "token_invalid"),
        ({"HTTP_X_GITLAB_TOKEN": None}, "token_missing"),
        ({"token": payloads.GITLAB_API_TOKEN}, "token_invalid"),
    ],
)
def test_a_wrong_or_missing_token_is_refused_and_nothing_is_written(
    client, gitlab, mapped, github_release, headers, code
):
    before = written()

    response = post(client, payloads.gitlab_event(), **headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert written() == before


def test_only_the_tokens_digest_is_stored(gitlab):
    assert payloads.GITLAB_TOKEN not in str(gitlab.__dict__)
    assert gitlab.secret_hint == "0002"


@pytest.mark.parametrize("status", ["created", "running", "success", "failed", "canceled"])
def test_a_deployment_that_is_not_blocked_is_ignored(
    client, gitlab, mapped, github_release, status
):
    before = written()

    response = post(client, payloads.gitlab_event(status=status))

    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert written() == before


def test_a_blocked_deployment_is_linked_to_the_release_of_its_commit(
    client, gitlab, mapped, github_release
):
    response = post(client, payloads.gitlab_event())

    assert response.status_code == 200
    assert response.json()["release"] == github_release.pk
    wait = PipelineWait.objects.get()
    assert (wait.provider, wait.external_id, wait.sha, wait.run_url, wait.callback) == (
        "gitlab",
        "15",
        payloads.SHA,
        "https://gitlab.example.com/acme/payments-api/-/jobs/796",
        {"project_id": 30, "deployment_id": 15},
    )


def test_a_replayed_delivery_changes_nothing(client, gitlab, mapped, github_release):
    headers = payloads.gitlab_headers()
    body = payloads.dumps(payloads.gitlab_event())
    client.post(URL, body, content_type="application/json", **headers)
    before = written()

    again = client.post(URL, body, content_type="application/json", **headers)

    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert written() == before


def test_a_deployment_of_an_unknown_commit_is_not_linked(client, gitlab, mapped, github_release):
    response = post(client, payloads.gitlab_event(sha="b" * 40))

    assert response.status_code == 202
    assert response.json()["message"] == (
        "No release of payments-api to production names this run or commit, and this "
        "integration does not open releases. The run keeps waiting; nothing was linked."
    )
    assert PipelineWait.objects.count() == 0


def test_approval_goes_to_the_deployment_approval_api_with_the_token(
    client, gitlab, mapped, github_release, provider_api, approver, second_approver, cab_member
):
    post(client, payloads.gitlab_event())

    for person in (approver, second_approver, cab_member):
        factories.decide(github_release, person, rationale="Checked.")
    assert deliver_due(timezone.now()) == 1

    [call] = provider_api.calls
    assert call.path == "/api/v4/projects/30/deployments/15/approval"
    assert call.headers["PRIVATE-TOKEN"] == payloads.GITLAB_API_TOKEN
    assert call.json() == {
        "status": "approved",
        "comment": f"Approved in Signoff, release #{github_release.pk} "
        f"({github_release.digest}), by Service approval: alice (Checked.); Service approval: "
        "bob (Checked.); CAB approval: carol (Checked.).",
    }


def test_represented_as_is_sent_when_configured(
    client, settings, gitlab, mapped, github_release, provider_api, approver
):
    settings.SIGNOFF_GITLAB_REPRESENTED_AS = "Release managers"
    post(client, payloads.gitlab_event())

    factories.decide(github_release, approver, "reject", "No rollback plan.")
    deliver_due(timezone.now())

    body = provider_api.calls[0].json()
    assert (body["status"], body["represented_as"]) == ("rejected", "Release managers")


def test_a_withdrawal_is_answered_rejected_naming_who_and_why(
    client, gitlab, mapped, github_release, provider_api, requester
):
    from approvals import services

    post(client, payloads.gitlab_event())

    services.withdraw_request(release=github_release, actor=requester, reason="Wrong build.")

    body = Delivery.objects.get().payload
    assert body["status"] == "rejected"
    assert body["comment"].startswith(f"Signoff release #{github_release.pk} is rejected: ")
    assert body["comment"].endswith("UTC: Wrong build.")
    assert "Withdrawn by dave at " in body["comment"]

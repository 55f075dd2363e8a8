"""POST /integrations/github/: GitHub's deployment protection rule, from the signed event to the
review Signoff posts back to the run's deployment_callback_url as the App's installation."""

from __future__ import annotations

import json

import jwt
import pytest
from django.utils import timezone

from approvals.models import Release
from approvals.pipelines.models import InboundDelivery, PipelineWait
from governance.ledger.models import LedgerEntry
from governance.models import Delivery
from governance.notifications.outbox import deliver_due
from tests import factories
from tests.approvals.pipelines import payloads
from tests.approvals.pipelines.conftest import APP_ID
from tests.approvals.pipelines.stubs import INSTALLATION_TOKEN

pytestmark = pytest.mark.django_db
URL = "/integrations/github/"
RATIONALE = "Reviewed the diff and the test report."


def post(client, document: dict, **headers):
    body = payloads.dumps(document)
    return client.post(
        URL, body, content_type="application/json", **payloads.github_headers(body, **headers)
    )


def written() -> tuple[int, int, int, int]:
    return (
        PipelineWait.objects.count(),
        InboundDelivery.objects.count(),
        LedgerEntry.objects.count(),
        Delivery.objects.count(),
    )


def approve_all(release: Release, approver, second_approver, cab_member) -> None:
    for person in (approver, second_approver, cab_member):
        factories.decide(release, person, rationale=RATIONALE)


# --- Authentication: nothing is written for a request GitHub did not sign ------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"secret": "not-the-configured-secret"}, "signature_invalid"),
        ({"HTTP_X_HUB_SIGNATURE_256": None, "HTTP_X_HUB_SIGNATURE": None}, "signature_missing"),
        ({"HTTP_X_HUB_SIGNATURE_256": None}, "signature_sha1_refused"),
        ({"HTTP_X_HUB_SIGNATURE_256": "sha256=" + "0" * 64}, "signature_invalid"),
    ],
)
def test_an_unsigned_or_wrongly_signed_event_is_refused_and_nothing_is_written(
    client, github, mapped, github_release, provider_api, headers, code
):
    before = written()

    response = post(client, payloads.github_event(provider_api.url), **headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert written() == before


def test_a_body_changed_after_signing_is_refused(
    client, github, mapped, github_release, provider_api
):
    signed = payloads.dumps(payloads.github_event(provider_api.url))
    tampered = payloads.dumps(payloads.github_event(provider_api.url, environment="staging"))
    before = written()

    response = client.post(
        URL, tampered, content_type="application/json", **payloads.github_headers(signed)
    )

    assert (response.status_code, response.json()["error"]["code"]) == (401, "signature_invalid")
    assert written() == before


def test_without_a_configured_secret_every_event_is_refused(client, db, provider_api):
    response = post(client, payloads.github_event(provider_api.url))

    assert (response.status_code, response.json()["error"]["code"]) == (401, "not_configured")
    assert LedgerEntry.objects.count() == 0


def test_ping_is_answered(client, github, provider_api):
    before = written()

    response = post(client, {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping")

    assert (response.status_code, response.json()) == (200, {"status": "pong"})
    assert written() == before


# --- Linking --------------------------------------------------------------------------------------


def test_the_event_is_linked_to_the_release_of_the_same_run(
    client, github, mapped, github_release, provider_api
):
    response = post(client, payloads.github_event(provider_api.url))

    assert response.status_code == 200
    assert response.json() == {
        "status": "linked",
        "message": f"Run linked to release #{github_release.pk}.",
        "release": github_release.pk,
    }
    wait = PipelineWait.objects.get()
    assert (
        wait.provider,
        wait.release,
        wait.external_id,
        wait.environment_name,
        wait.run_url,
        wait.sha,
        wait.state,
    ) == (
        "github",
        github_release,
        "deployment:145988746:production",
        "production",
        "https://github.com/acme/payments-api/actions/runs/9001",
        payloads.SHA,
        "waiting",
    )
    assert wait.callback == {
        "url": f"{provider_api.url}/repos/acme/payments-api/actions/runs/9001/"
        "deployment_protection_rule",
        "installation_id": 4242,
        "environment_name": "production",
    }
    entry = LedgerEntry.objects.filter(kind="pipeline.linked").get()
    assert (entry.subject, entry.actor, entry.payload["opened"]) == (
        f"release:{github_release.pk}",
        "github:dave",
        False,
    )
    assert Delivery.objects.count() == 0  # the gate is pending: nothing to answer yet


def test_a_new_run_of_the_same_commit_follows_the_same_release(
    client, github, mapped, github_release, provider_api
):
    response = post(client, payloads.github_event(provider_api.url, run_id=9555))

    assert (response.status_code, response.json()["release"]) == (200, github_release.pk)
    assert PipelineWait.objects.get().release == github_release


def test_a_run_whose_number_only_starts_like_the_release_run_is_not_linked_by_it(
    client, github, mapped, github_release, provider_api
):
    event = payloads.github_event(provider_api.url, run_id=90012, sha="a" * 40)

    response = post(client, event)

    assert response.status_code == 202
    assert response.json()["status"] == "unlinked"
    assert PipelineWait.objects.count() == 0


def test_a_redelivery_changes_nothing(client, github, mapped, github_release, provider_api):
    event = payloads.dumps(payloads.github_event(provider_api.url))
    headers = payloads.github_headers(event)
    first = client.post(URL, event, content_type="application/json", **headers)
    before = written()

    again = client.post(URL, event, content_type="application/json", **headers)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"status": "duplicate", "message": "Already received; nothing changed."}
    assert written() == before


def test_an_unmapped_repository_is_accepted_and_nothing_is_linked(
    client, github, github_release, provider_api
):
    response = post(client, payloads.github_event(provider_api.url))

    assert response.status_code == 202
    assert response.json() == {
        "status": "unlinked",
        "message": "No service is mapped to acme/payments-api; map it first. The run keeps "
        "waiting; nothing was linked.",
    }
    assert PipelineWait.objects.count() == 0
    entry = LedgerEntry.objects.filter(kind="pipeline.unlinked").get()
    assert entry.payload["reason"] == "No service is mapped to acme/payments-api; map it first."


def test_a_delivery_redelivered_after_the_mapping_is_made_links_the_run(
    client, github, github_release, provider_api, service
):
    from approvals.pipelines import services as pipelines

    event = payloads.dumps(payloads.github_event(provider_api.url))
    headers = payloads.github_headers(event)
    first = client.post(URL, event, content_type="application/json", **headers)
    pipelines.map_repository(
        provider="github", repository="acme/payments-api", service=service, actor="ada"
    )

    again = client.post(URL, event, content_type="application/json", **headers)

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["status"] == "linked"
    assert PipelineWait.objects.get().release == github_release
    assert InboundDelivery.objects.count() == 1


def test_a_callback_outside_the_configured_api_is_refused(
    client, github, mapped, github_release, provider_api
):
    event = payloads.github_event("https://attacker.example.net")
    before = written()

    response = post(client, event)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "deployment_callback_url": [
            "deployment_callback_url is not under the configured GitHub API URL."
        ]
    }
    assert written() == before


def test_an_event_without_an_installation_is_refused(
    client, github, mapped, github_release, provider_api
):
    event = payloads.github_event(provider_api.url)
    del event["installation"]
    before = written()

    response = post(client, event)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "installation": ["The GitHub App installation id is missing."]
    }
    assert written() == before


# --- Answering ------------------------------------------------------------------------------------


def test_approval_posts_approved_to_the_callback_with_an_installation_token(
    client, github, mapped, github_release, provider_api, approver, second_approver, cab_member
):
    post(client, payloads.github_event(provider_api.url))

    approve_all(github_release, approver, second_approver, cab_member)

    wait = PipelineWait.objects.get()
    assert (wait.state, wait.answer) == ("answered", "approved")
    delivery = Delivery.objects.get()
    assert (delivery.channel, delivery.kind, delivery.subject) == (
        "github",
        "pipeline.approved",
        f"release:{github_release.pk}",
    )
    assert deliver_due(timezone.now()) == 1
    exchange, review = provider_api.calls
    assert exchange.path == "/app/installations/4242/access_tokens"
    assert exchange.headers["Accept"] == "application/vnd.github+json"
    scheme, assertion = exchange.headers["Authorization"].split(" ")
    claims = jwt.decode(assertion, github_app_public_key(), algorithms=["RS256"])
    assert (scheme, claims["iss"], claims["exp"] - claims["iat"]) == ("Bearer", APP_ID, 600)
    assert review.path == "/repos/acme/payments-api/actions/runs/9001/deployment_protection_rule"
    assert review.headers["Authorization"] == f"Bearer {INSTALLATION_TOKEN}"
    assert review.headers["Accept"] == "application/vnd.github+json"
    assert review.json() == {
        "environment_name": "production",
        "state": "approved",
        "comment": f"Approved in Signoff, release #{github_release.pk} ({github_release.digest}), "
        f"by Service approval: alice ({RATIONALE}); Service approval: bob ({RATIONALE}); "
        f"CAB approval: carol ({RATIONALE}).",
    }
    entry = LedgerEntry.objects.filter(kind="pipeline.answer_queued").get()
    assert (entry.actor, entry.payload["answer"], entry.payload["delivery"]) == (
        "system",
        "approved",
        str(delivery.delivery_id),
    )


_PUBLIC_KEY = {}


def github_app_public_key():
    return _PUBLIC_KEY["key"]


@pytest.fixture(autouse=True)
def _remember_public_key(github_app):
    _PUBLIC_KEY["key"] = github_app


def test_a_rejection_posts_rejected_with_who_and_why(
    client, github, mapped, github_release, provider_api, approver
):
    post(client, payloads.github_event(provider_api.url))

    factories.decide(github_release, approver, "reject", "The migration has no rollback.")

    assert deliver_due(timezone.now()) == 1
    review = provider_api.calls[-1]
    body = review.json()
    assert (body["environment_name"], body["state"]) == ("production", "rejected")
    assert body["comment"].startswith(f"Signoff release #{github_release.pk} is rejected: ")
    assert "Rejected by alice at " in body["comment"]
    assert body["comment"].endswith("(Service approval): The migration has no rollback.")


def test_each_wait_is_answered_once(
    client, github, mapped, github_release, provider_api, approver, second_approver, cab_member
):
    from approvals.pipelines.answers import answer_release

    post(client, payloads.github_event(provider_api.url))
    approve_all(github_release, approver, second_approver, cab_member)

    assert answer_release(github_release.pk) == 0
    assert Delivery.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="pipeline.answer_queued").count() == 1


def test_a_run_arriving_after_the_decision_is_answered_at_once(
    client, github, mapped, github_release, provider_api, approver
):
    factories.decide(github_release, approver, "reject", "Not this week.")

    response = post(client, payloads.github_event(provider_api.url))

    assert response.json()["answer"] == "rejected"
    assert Delivery.objects.get().payload["state"] == "rejected"


def test_without_the_app_key_the_answer_waits_in_the_outbox(
    client, settings, github, mapped, github_release, provider_api, approver
):
    post(client, payloads.github_event(provider_api.url))
    factories.decide(github_release, approver, "reject", "Not this week.")
    settings.SIGNOFF_GITHUB_APP_PRIVATE_KEY = ""

    assert deliver_due(timezone.now()) == 0

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error == (
        "not sent: the GitHub App is not set up (SIGNOFF_GITHUB_APP_ID, "
        "SIGNOFF_GITHUB_APP_PRIVATE_KEY)"
    )
    assert provider_api.calls == []


def test_an_answer_is_never_sent_outside_the_configured_api(
    client, github, mapped, github_release, provider_api, approver
):
    from approvals.pipelines import services as pipelines

    post(client, payloads.github_event(provider_api.url))
    factories.decide(github_release, approver, "reject", "Not this week.")
    pipelines.configure_integration(
        provider="github", actor="ada", api_url="https://api.github.com"
    )

    assert deliver_due(timezone.now()) == 0

    assert Delivery.objects.get().last_error == (
        "not sent: the callback is not under GitHub's API URL"
    )
    assert provider_api.calls == []


def test_the_request_api_keeps_the_commit(org, pipeline_bot, api):
    body = factories.release_body()
    body["pipeline"]["sha"] = payloads.SHA.upper()

    response = api(pipeline_bot).post("/api/v1/releases/", body)

    assert response.status_code == 201
    assert Release.objects.get().pipeline_sha == payloads.SHA


@pytest.mark.parametrize("sha", ["abc123", "g" * 40, "a" * 41])
def test_the_request_api_refuses_a_commit_that_is_not_one(org, pipeline_bot, api, sha):
    body = factories.release_body()
    body["pipeline"]["sha"] = sha

    response = api(pipeline_bot).post("/api/v1/releases/", body)

    assert response.status_code == 400
    assert json.loads(response.content)["error"]["fields"] == {
        "pipeline": {"sha": ["Must be a commit id: 40 or 64 hex digits."]}
    }
    assert Release.objects.count() == 0


def test_a_refused_installation_token_leaves_the_answer_to_retry(
    client, github, mapped, github_release, provider_api, approver
):
    provider_api.token_status = 401
    post(client, payloads.github_event(provider_api.url))
    factories.decide(github_release, approver, "reject", "Not this week.")

    assert deliver_due(timezone.now()) == 0

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_error) == (
        "pending",
        "not sent: GitHub gave no installation token (401 Unauthorized)",
    )
    assert [call.path for call in provider_api.calls] == ["/app/installations/4242/access_tokens"]

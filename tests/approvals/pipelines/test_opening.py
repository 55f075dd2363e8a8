"""Opening a release for a run no release names: only when the integration allows it, and only
for a commit whose artifact (digest) Signoff already knows; a digest is never made up."""

from __future__ import annotations

import pytest

from approvals import services
from approvals.models import Release
from approvals.pipelines import services as pipelines
from approvals.pipelines.models import PipelineWait
from governance.ledger.models import LedgerEntry
from tests import factories
from tests.approvals.pipelines import payloads

pytestmark = pytest.mark.django_db


@pytest.fixture
def staging_release(org, service, staging, pipeline_bot):
    """The same build, already on its way to staging: its digest is known for the commit."""
    release, _ = services.request_approval(
        data=factories.release_input(
            service, staging, triggered_by="dave", pipeline_sha=payloads.SHA, version="2.14.0"
        ),
        actor=pipeline_bot,
    )
    return release


@pytest.fixture
def opening(github):
    return pipelines.configure_integration(provider="github", actor="ada", open_releases=True)


def post(client, document: dict):
    body = payloads.dumps(document)
    return client.post(
        "/integrations/github/",
        body,
        content_type="application/json",
        **payloads.github_headers(body),
    )


def test_a_run_of_a_known_commit_opens_a_release_of_the_same_artifact(
    client, opening, mapped, staging_release, production, provider_api, pipeline_bot, requester
):
    response = post(client, payloads.github_event(provider_api.url, run_id=777))

    assert response.status_code == 200
    opened = Release.objects.get(environment=production)
    assert response.json()["message"] == f"Run opened release #{opened.pk}."
    assert (
        opened.service,
        opened.version,
        opened.image,
        opened.digest,
        opened.change,
        opened.requested_by,
        opened.triggered_by,
        opened.pipeline_provider,
        opened.pipeline_run_url,
        opened.pipeline_sha,
    ) == (
        staging_release.service,
        "2.14.0",
        staging_release.image,
        staging_release.digest,
        staging_release.change,
        pipeline_bot,
        requester,
        "github",
        "https://github.com/acme/payments-api/actions/runs/777",
        payloads.SHA,
    )
    assert list(opened.evidence.values_list("kind", "status")) == [("tests", "passed")]
    assert PipelineWait.objects.get().release == opened
    assert LedgerEntry.objects.get(kind="pipeline.linked").payload["opened"] is True


def test_without_a_known_artifact_nothing_is_opened_and_the_ledger_says_why(
    client, opening, mapped, org, provider_api
):
    response = post(client, payloads.github_event(provider_api.url))

    assert response.status_code == 202
    assert Release.objects.count() == 0
    reason = LedgerEntry.objects.get(kind="pipeline.unlinked").payload["reason"]
    assert reason == (
        "No release of payments-api to production names this run or commit, and no earlier "
        "release names the artifact (digest) built from this commit; request approval from "
        "the pipeline with pipeline.sha set."
    )


def test_an_integration_that_does_not_open_releases_opens_none(
    client, github, mapped, staging_release, production, provider_api
):
    response = post(client, payloads.github_event(provider_api.url, run_id=777))

    assert response.status_code == 202
    assert not Release.objects.filter(environment=production).exists()
    assert PipelineWait.objects.count() == 0

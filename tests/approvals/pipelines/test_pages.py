"""The Integrations page and the release page's pipeline panel: who sees which waiting runs, who
may configure, and bad input shown as form errors with nothing written."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.pipelines import services as pipelines
from approvals.pipelines.models import PipelineIntegration, PipelineWait, RepositoryMapping
from governance.ledger.models import LedgerEntry
from tests import factories
from tests.approvals.pipelines import payloads

pytestmark = pytest.mark.django_db
URL = "/approvals/integrations/"


def wait_for(release, number: int = 1, **fields) -> PipelineWait:
    values = {
        "provider": "gitlab",
        "release": release,
        "external_id": str(number),
        "environment_name": "production",
        "run_url": f"https://gitlab.example.com/acme/payments-api/-/jobs/{number}",
        "sha": payloads.SHA,
        "callback": {"project_id": 30, "deployment_id": number},
    }
    return PipelineWait.objects.create(**{**values, **fields})


def sign_in(client, user) -> None:
    client.force_login(user)


def github_post(**overrides) -> dict:
    data = {
        "action": "github",
        "github-secret": payloads.GITHUB_SECRET,
        "github-api_url": "https://api.github.com",
        "github-reason": "Protection rules for payments",
    }
    return {**data, **overrides}


# --- Who sees what --------------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client, github_release):
    wait_for(github_release)

    assert client.get(URL).status_code == 302
    response = client.post(URL, github_post())
    assert response.status_code == 302
    assert "login" in response["Location"]
    assert PipelineIntegration.objects.count() == 0


def test_someone_without_a_role_sees_no_run_and_no_settings(client, github_release, outsider):
    wait_for(github_release)
    sign_in(client, outsider)

    response = client.get(URL)

    assert response.status_code == 200
    content = response.content.decode()
    assert 'data-testid="waiting-run"' not in content
    assert "No run is waiting on a release you can see." in content
    assert 'data-testid="github-settings"' not in content


def test_an_approver_of_another_service_does_not_see_the_run(
    client, github_release, other_service_approver
):
    wait_for(github_release)
    sign_in(client, other_service_approver)

    assert 'data-testid="waiting-run"' not in client.get(URL).content.decode()


def test_an_approver_of_the_service_sees_the_waiting_run(client, github_release, approver):
    wait_for(github_release)
    wait_for(github_release, 2, state="answered", answer="approved")
    sign_in(client, approver)

    response = client.get(URL)

    content = response.content.decode()
    assert content.count('data-testid="waiting-run"') == 1
    assert f'data-release="{github_release.pk}"' in content
    assert "https://gitlab.example.com/acme/payments-api/-/jobs/1" in content
    assert 'data-testid="github-settings"' not in content


@pytest.mark.parametrize("user", ["outsider", "approver", "requester"])
def test_only_administrators_may_configure(client, github_release, request, user):
    sign_in(client, request.getfixturevalue(user))
    before = LedgerEntry.objects.count()

    response = client.post(URL, github_post())

    assert response.status_code == 403
    assert PipelineIntegration.objects.count() == 0
    assert LedgerEntry.objects.count() == before


def test_an_administrator_configures_github(client, administrator):
    sign_in(client, administrator)

    response = client.post(URL, github_post())

    assert (response.status_code, response["Location"]) == (302, URL)
    integration = PipelineIntegration.objects.get()
    assert (integration.provider, integration.webhook_secret, integration.api_url) == (
        "github",
        payloads.GITHUB_SECRET,
        "https://api.github.com",
    )
    entry = LedgerEntry.objects.get(kind="integration.configured")
    assert (entry.actor, entry.payload["reason"]) == ("ada", "Protection rules for payments")
    page = client.get(URL).content.decode()
    assert "Secret …0001 · API https://api.github.com · opens no release" in page
    assert payloads.GITHUB_SECRET not in page


def test_a_blank_secret_keeps_the_stored_one(client, administrator):
    pipelines.configure_integration(
        provider="github", actor="ada", secret=payloads.GITHUB_SECRET, api_url="https://a.example"
    )
    sign_in(client, administrator)

    client.post(URL, github_post(**{"github-secret": "", "github-open_releases": "on"}))

    integration = PipelineIntegration.objects.get()
    assert (integration.webhook_secret, integration.open_releases) == (
        payloads.GITHUB_SECRET,
        True,
    )


def test_a_short_secret_is_a_form_error_and_nothing_is_written(client, administrator):
    sign_in(client, administrator)
    before = LedgerEntry.objects.count()

    response = client.post(URL, github_post(**{"github-secret": "short"}))

    assert response.status_code == 400
    assert "16 to 200 printable characters, no spaces." in response.content.decode()
    assert PipelineIntegration.objects.count() == 0
    assert LedgerEntry.objects.count() == before


def test_an_administrator_maps_a_repository(client, administrator, service):
    sign_in(client, administrator)

    response = client.post(
        URL,
        {
            "action": "mapping",
            "mapping-provider": "gitlab",
            "mapping-repository": "acme/payments/api",
            "mapping-service": "payments-api",
            "mapping-reason": "Payments moved to GitLab",
        },
    )

    assert response.status_code == 302
    mapping = RepositoryMapping.objects.get()
    assert (mapping.provider, mapping.repository, mapping.service) == (
        "gitlab",
        "acme/payments/api",
        service,
    )


def test_a_bad_repository_is_a_form_error(client, administrator, service):
    sign_in(client, administrator)

    response = client.post(
        URL,
        {
            "action": "mapping",
            "mapping-provider": "github",
            "mapping-repository": "not a repository",
            "mapping-service": "payments-api",
            "mapping-reason": "x",
        },
    )

    assert response.status_code == 400
    assert "owner/repo (GitLab: group/subgroup/project)" in response.content.decode()
    assert RepositoryMapping.objects.count() == 0


def test_the_page_costs_the_same_queries_for_one_run_and_for_many(
    client, org, service, production, pipeline_bot, approver
):
    from approvals import services

    sign_in(client, approver)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    def more_runs(first: int, count: int) -> None:
        for number in range(first, first + count):
            release, _ = services.request_approval(
                data=factories.release_input(service, production), actor=pipeline_bot
            )
            wait_for(release, number)

    more_runs(1, 1)
    one = queries()
    more_runs(2, 9)
    assert queries() == one


# --- The release page -----------------------------------------------------------------------------


def test_the_release_page_lists_its_runs_and_their_answers(client, github_release, approver):
    wait_for(github_release)
    wait_for(github_release, 2, provider="github", state="answered", answer="rejected")
    sign_in(client, approver)

    response = client.get(f"/approvals/releases/{github_release.pk}/")

    content = response.content.decode()
    assert content.count('data-testid="pipeline-run"') == 2
    assert "waiting for the gate" in content
    assert "answered rejected" in content


def test_the_pipeline_panel_is_one_query_whatever_the_runs(github_release):
    from approvals.pipelines.presenters import pipeline_panel

    for number in range(1, 6):
        wait_for(github_release, number)

    with CaptureQueriesContext(connection) as captured:
        panel = pipeline_panel(github_release)

    assert len(captured) == 1
    assert [run["external_id"] for run in panel["runs"]] == ["5", "4", "3", "2", "1"]
    assert panel["runs"][0] == {
        "provider": "GitLab",
        "environment": "production",
        "run_url": "https://gitlab.example.com/acme/payments-api/-/jobs/5",
        "external_id": "5",
        "sha": payloads.SHA[:12],
        "waiting": True,
        "answer": "",
        "badge": "text-bg-secondary",
        "answered_at": None,
        "linked_at": panel["runs"][0]["linked_at"],
    }


def test_a_release_without_runs_shows_no_panel(github_release):
    from approvals.pipelines.presenters import pipeline_panel

    assert pipeline_panel(github_release) == {}

"""GitHub's deployment_protection_rule and GitLab's deployment hook:
`approvals.pipelines.events.github_run` / `gitlab_run`, and the signed webhooks in front."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from approvals.exceptions import InvalidRequest
from approvals.models import Release
from approvals.pipelines import services as pipelines
from approvals.pipelines.events import RunEvent, github_run, gitlab_run
from approvals.pipelines.models import InboundDelivery, PipelineWait
from tests.approvals.pipelines import payloads
from tests.approvals.pipelines.conftest import github_release  # noqa: F401 (a fixture)
from tests.fuzz.helpers import ENDPOINT, PARSER, assert_api_error, bodies, documents, fingerprint

# Configured, never called: answers go out after commit, which a test transaction never does.
API_URL = "http://127.0.0.1:9"
TABLES = (PipelineWait, InboundDelivery, Release)
HOOK_ANSWERS = {200, 202, 400, 413}
GITHUB, GITLAB = "/integrations/github/", "/integrations/gitlab/"
GITHUB_EVENTS = st.builds(payloads.github_event, st.just(API_URL))
GITLAB_EVENTS = st.builds(payloads.gitlab_event)


def assert_run_or_invalid(read, document) -> None:
    try:
        run = read(document)
    except InvalidRequest as exc:
        assert isinstance(exc.message, str) and exc.message
        assert exc.fields and all(isinstance(key, str) for key in exc.fields)
    else:
        assert isinstance(run, RunEvent)
        assert len(run.external_id) <= 200 and len(run.run_url) <= 500
        assert run.repository and run.environment_name


@PARSER
@given(event=documents(GITHUB_EVENTS))
def test_a_github_event_is_read_or_refused_naming_the_field(event):
    assert_run_or_invalid(github_run, event)


@PARSER
@given(event=documents(GITLAB_EVENTS))
def test_a_gitlab_event_is_read_or_refused_naming_the_field(event):
    assert_run_or_invalid(gitlab_run, event)


@pytest.fixture
def hooks(org, service, github_release):  # noqa: F811
    """Both integrations configured and acme/payments-api mapped to payments-api; GitHub's
    run 9001 deploys `github_release`, so a well-formed event links to it."""
    pipelines.configure_integration(
        provider="github", actor="ada", secret=payloads.GITHUB_SECRET, api_url=API_URL
    )
    pipelines.configure_integration(
        provider="gitlab",
        actor="ada",
        secret=payloads.GITLAB_TOKEN,
        api_url=API_URL,
        api_token=payloads.GITLAB_API_TOKEN,
    )
    for provider in ("github", "gitlab"):
        pipelines.map_repository(
            provider=provider, repository="acme/payments-api", service=service, actor="ada"
        )


@pytest.mark.django_db
@ENDPOINT
@given(text=bodies(GITHUB_EVENTS))
def test_a_signed_github_delivery_links_or_is_refused_with_nothing_written(client, hooks, text):
    body = text.encode()
    before = fingerprint(*TABLES)

    headers = payloads.github_headers(body)

    response = client.post(GITHUB, body, content_type="application/json", **headers)

    assert_api_error(response, HOOK_ANSWERS)
    if response.status_code >= 400:
        assert fingerprint(*TABLES) == before


@pytest.mark.django_db
@ENDPOINT
@given(body=bodies(GITLAB_EVENTS))
def test_an_authenticated_gitlab_delivery_links_or_is_refused_with_nothing_written(
    client, hooks, body
):
    before = fingerprint(*TABLES)

    response = client.post(
        GITLAB, body, content_type="application/json", **payloads.gitlab_headers()
    )

    assert_api_error(response, HOOK_ANSWERS)
    if response.status_code >= 400:
        assert fingerprint(*TABLES) == before

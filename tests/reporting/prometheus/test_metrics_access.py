"""Who gets /metrics: Prometheus with the configured token, and nobody else (not even a signed-in
administrator); without a token configured the endpoint is off."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.openmetrics import parser as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from governance.models import Role
from tests import factories
from tests.reporting.prometheus.conftest import TOKEN

pytestmark = pytest.mark.django_db
# What Prometheus 3 sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PERSONAS = [
    "approver",
    "requester",
    "cab_member",
    "security_approver",
    "auditor",
    "administrator",
]


@pytest.fixture
def security_approver(db):
    user = factories.UserFactory(username="sam", first_name="Sam")
    factories.grant(user, Role.SECURITY_APPROVER)
    return user


def get_metrics(client: Client | None = None, authorization: str | None = None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return (client or Client()).get("/metrics", **headers)


def assert_no_metrics(response) -> None:
    assert b"signoff_" not in response.content
    assert b"# TYPE" not in response.content


def test_prometheus_with_the_token_gets_the_text_exposition_format(org, metrics_token):
    response = get_metrics(authorization=f"Bearer {metrics_token}")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"]
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert families["signoff_approvals_pending"].type == "gauge"
    assert families["signoff_decisions"].type == "counter"


def test_prometheus_asking_for_openmetrics_gets_openmetrics(org, metrics_token):
    response = Client().get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}", HTTP_ACCEPT=PROMETHEUS_ACCEPT
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = response.content.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics.text_string_to_metric_families(text)}
    assert families["signoff_gate_answers"].type == "counter"
    assert families["signoff_ledger_entries"].type == "gauge"


def test_without_a_configured_token_metrics_are_off(org, settings):
    settings.SIGNOFF_METRICS_TOKEN = ""

    anonymous = get_metrics()
    guessing = get_metrics(authorization="Bearer ")
    with_a_token = get_metrics(authorization=f"Bearer {TOKEN}")

    for response in (anonymous, guessing, with_a_token):
        assert response.status_code == 404
        assert response.content == b"Metrics are off: SIGNOFF_METRICS_TOKEN is not set.\n"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer  ", f"Basic {TOKEN}", f"Token {TOKEN}", TOKEN],
    ids=["none", "empty", "scheme-only", "blank", "basic", "token-scheme", "no-scheme"],
)
def test_without_a_bearer_token_prometheus_is_challenged(
    org, metrics_token, authorization, django_assert_num_queries
):
    with factories.nothing_changes(), django_assert_num_queries(0):
        response = get_metrics(authorization=authorization)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="signoff-metrics"'
    assert response.content == b"Send Authorization: Bearer <the metrics token>.\n"
    assert_no_metrics(response)


@pytest.mark.parametrize(
    "offered",
    [TOKEN[:-1], TOKEN + "0", TOKEN.upper(), "metrics-token", f"{TOKEN} {TOKEN}"],
    ids=["shorter", "longer", "other-case", "prefix", "twice"],
)
def test_a_wrong_token_is_refused_with_invalid_token(
    org, metrics_token, offered, django_assert_num_queries
):
    # Refused before anything is read: not one query, nothing written.
    with factories.nothing_changes(), django_assert_num_queries(0):
        response = get_metrics(authorization=f"Bearer {offered}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="signoff-metrics", error="invalid_token"'
    assert_no_metrics(response)


def test_the_token_may_come_with_any_case_of_scheme(org, metrics_token):
    response = get_metrics(authorization=f"bearer {metrics_token}")

    assert response.status_code == 200


@pytest.mark.parametrize("persona", PERSONAS)
def test_a_signed_in_person_without_the_token_gets_no_metrics(org, persona, request):
    request.getfixturevalue("metrics_token")
    user = request.getfixturevalue(persona)
    client = factories.SignInClient()
    client.force_login(user)

    response = get_metrics(client)

    assert response.status_code == 401
    assert_no_metrics(response)


@pytest.mark.parametrize("persona", PERSONAS)
def test_a_persons_api_token_is_not_the_metrics_token(org, persona, request):
    request.getfixturevalue("metrics_token")
    user = request.getfixturevalue(persona)

    response = get_metrics(authorization=f"Bearer {factories.token_for(user)}")

    assert response.status_code == 401
    assert_no_metrics(response)


def test_only_get_is_answered(org, metrics_token):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {metrics_token}"}

    posted = Client().post("/metrics", **headers)
    put = Client().put("/metrics", **headers)

    assert (posted.status_code, put.status_code) == (405, 405)
    assert_no_metrics(posted)


def test_an_address_guessing_tokens_is_blocked_even_with_the_right_one(
    org, metrics_token, settings
):
    for n in range(settings.API_TOKEN_FAILURE_LIMIT):
        assert get_metrics(authorization=f"Bearer guess-{n}").status_code == 401

    blocked = get_metrics(authorization=f"Bearer {metrics_token}")

    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert_no_metrics(blocked)

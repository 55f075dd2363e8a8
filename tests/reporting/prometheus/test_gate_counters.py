"""Gate answers and admission reviews are counted in the cache: one Redis command on the gate's
path, shared by every web process, and never a reason for the gate not to answer."""

from __future__ import annotations

import time

import pytest
import redis
from django.core.cache import caches
from django.test import Client

from approvals import services
from approvals.admission.services import register_cluster
from approvals.models import Release
from governance import counters
from governance.ledger.models import LedgerHead
from tests import factories
from tests.approvals.admission.conftest import EVIDENCE, pinned, review
from tests.reporting.prometheus.conftest import sample

pytestmark = pytest.mark.django_db
RUN_URL = "https://dev.azure.com/acme/payments/_build/results?buildId=812"


@pytest.fixture
def release(org, service, production, pipeline_bot) -> Release:
    """payments-api to production, requested by an Azure pipeline run, with its evidence."""
    release, _ = services.request_approval(
        data=factories.release_input(
            service, production, pipeline_run_url=RUN_URL, evidence=EVIDENCE
        ),
        actor=pipeline_bot,
    )
    return release


@pytest.fixture
def approved(release, approver, second_approver, cab_member) -> Release:
    for person in (approver, second_approver, cab_member):
        factories.decide(release, person)
    return release


@pytest.fixture
def pipeline(pipeline_bot) -> Client:
    return Client(headers={"authorization": f"Bearer {factories.token_for(pipeline_bot)}"})


@pytest.fixture
def redis_commands(monkeypatch) -> list[str]:
    """The name of every command sent to Redis from here on."""
    sent: list[str] = []
    send = redis.Redis.execute_command

    def recording(self, *args, **options):
        sent.append(args[0])
        return send(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", recording)
    return sent


def gate(pipeline: Client, release: Release) -> dict:
    response = pipeline.get(f"/api/v1/releases/{release.pk}/gate")
    assert response.status_code == 200
    return response.json()


def test_each_gate_answer_costs_one_redis_command_beside_the_token_check(
    approved, pipeline, redis_cache, redis_commands
):
    gate(pipeline, approved)

    # GET: whether the address is blocked for failed tokens (governance.identity); INCRBY: the
    # answer counted, created at zero when missing.
    assert redis_commands == ["GET", "INCRBY"]


def test_gate_answers_are_counted_in_redis_for_every_web_process(
    approved, pipeline, redis_cache, scrape
):
    gate(pipeline, approved)
    gate(pipeline, approved)
    backend = caches["default"]
    key = backend.make_and_validate_key("counter:gate-answers:api:approved")

    # Another process's view of it: the raw key in Redis, then a scrape.
    stored = redis.Redis.from_url(backend._servers[0]).get(key)
    metrics = scrape()

    assert stored == b"2"
    assert metrics[sample("signoff_gate_answers_total", via="api", status="approved")] == 2.0


def test_the_quick_starts_memory_cache_counts_too(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "counters-test",
        }
    }
    series = (counters.GATE_ANSWERS, "api", "blocked")

    counters.increment(*series)
    counters.increment(*series)

    assert counters.read([series, (counters.GATE_ANSWERS, "api", "expired")]) == {
        series: 2,
        (counters.GATE_ANSWERS, "api", "expired"): 0,
    }


def test_azure_api_response_checks_are_counted_as_azure(release, approved, pipeline, scrape):
    url = f"/integrations/azure/gate?run_url={RUN_URL}&environment=production"

    answers = [pipeline.get(url).json()["status"] for _ in range(3)]
    missing = pipeline.get(f"/integrations/azure/gate?run_url={RUN_URL}x&environment=production")

    metrics = scrape()
    assert answers == ["approved"] * 3
    assert missing.status_code == 404
    assert metrics[sample("signoff_gate_answers_total", via="azure", status="approved")] == 3.0
    assert metrics[sample("signoff_gate_answers_total", via="api", status="approved")] == 0.0


def test_a_refused_gate_question_is_not_an_answer(release, pipeline, scrape):
    malformed = pipeline.get(f"/api/v1/releases/{release.pk}/gate?digest=sha256:nope")
    unknown = pipeline.get("/api/v1/releases/999999/gate")
    anonymous = Client().get(f"/api/v1/releases/{release.pk}/gate")

    metrics = scrape()
    assert (malformed.status_code, unknown.status_code, anonymous.status_code) == (400, 404, 401)
    assert sum(v for (name, _), v in metrics.items() if name == "signoff_gate_answers_total") == 0


def test_admission_reviews_are_counted_by_verdict(org, production, approved, client, scrape):
    cluster = register_cluster(
        name="prod-eu-1", environment=production, namespaces=["payments"], actor="test"
    )
    headers = {"HTTP_AUTHORIZATION": f"Bearer {cluster.token}"}

    def admit(image: str) -> bool:
        response = client.post(
            "/integrations/kubernetes/prod-eu-1/admission",
            review("Pod", [image]),
            content_type="application/json",
            **headers,
        )
        return response.json()["response"]["allowed"]

    verdicts = [admit(pinned(approved)), admit(f"{approved.image}:latest"), admit(pinned(approved))]

    metrics = scrape()
    assert verdicts == [True, False, True]
    assert metrics[sample("signoff_admission_reviews_total", verdict="allowed")] == 2.0
    assert metrics[sample("signoff_admission_reviews_total", verdict="denied")] == 1.0


def test_with_redis_down_the_gate_still_answers_and_only_the_count_is_lost(
    approved, pipeline, release, redis_down, scrape
):
    started = time.monotonic()

    answer = gate(pipeline, approved)
    azure = pipeline.get(f"/integrations/azure/gate?run_url={RUN_URL}&environment=production")

    assert time.monotonic() - started < 5
    assert answer["status"] == "approved"
    assert azure.status_code == 200 and azure.json()["status"] == "approved"
    metrics = scrape()
    assert metrics[sample("signoff_counters_up")] == 0.0
    assert not [name for name, _ in metrics if name.startswith("signoff_gate_answers")]
    assert metrics[sample("signoff_approvals_pending", environment="production")] == 0.0
    assert metrics[sample("signoff_decisions_total", verdict="approve", channel="ui")] == 3.0
    assert metrics[sample("signoff_ledger_entries")] == LedgerHead.objects.get(pk=1).seq

"""A scrape costs the same few queries whatever the size of the history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from approvals import services
from approvals.services.escalation import escalate_overdue_stages
from benchmarks.prometheus import measure_metrics_endpoint
from governance.ledger import checkpoints
from tests import factories

pytestmark = pytest.mark.django_db
# Environments; pending requests; overdue stages; decisions; escalations and unapproved
# deployments (one ledger count); the outbox's pending rows; its given-up rows; the ledger's
# head; the latest finished verification. The checkpoint is read from its store, not the
# database; the token is compared with a setting.
SCRAPE_QUERIES = 9


def scrape_counting(django_assert_num_queries, token: str) -> None:
    with django_assert_num_queries(SCRAPE_QUERIES):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


def requested(count: int, service, environment, pipeline_bot) -> list:
    return [
        services.request_approval(
            data=factories.release_input(service, environment), actor=pipeline_bot
        )[0]
        for _ in range(count)
    ]


def test_a_scrape_costs_the_same_queries_for_one_release_and_for_many(
    org,
    service,
    production,
    staging,
    pipeline_bot,
    approver,
    second_approver,
    metrics_token,
    django_assert_num_queries,
):
    requested(1, service, production, pipeline_bot)
    scrape_counting(django_assert_num_queries, metrics_token)

    releases = requested(12, service, production, pipeline_bot)
    releases += requested(12, service, staging, pipeline_bot)
    for release in releases[:6]:
        factories.decide(release, approver)
        factories.decide(release, second_approver)
    for release in releases[12:18]:
        factories.decide(release, approver, verdict="reject", rationale="Not this week.")
    assert escalate_overdue_stages(now=releases[-1].created_at + timedelta(days=30)) > 0
    checkpoints.write_checkpoint()

    scrape_counting(django_assert_num_queries, metrics_token)


def test_the_benchmark_times_a_scrape_and_counts_its_queries(org, production_release):
    [timing] = measure_metrics_endpoint(3)

    assert timing.error is None
    assert len(timing.samples) == 3 and min(timing.samples) > 0
    assert timing.queries == [SCRAPE_QUERIES] * 3

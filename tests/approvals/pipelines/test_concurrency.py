"""Racing deliveries and racing sweeps: one run is linked once and answered once."""

from __future__ import annotations

import pytest

from approvals.pipelines import events, services
from approvals.pipelines.answers import answer_waiting
from approvals.pipelines.models import PipelineWait
from governance.models import Delivery, LedgerEntry
from tests import factories
from tests.approvals.pipelines import payloads
from tests.approvals.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_deliveries_of_one_run_at_once_link_it_once(
    github, mapped, github_release, provider_api
):
    run = events.github_run(payloads.github_event(provider_api.url))

    results = run_together(
        lambda: services.receive_run(event=run, delivery_id="delivery-a"),
        lambda: services.receive_run(event=run, delivery_id="delivery-b"),
    )

    assert sorted(outcome.status for outcome in results) == ["duplicate", "linked"]
    assert PipelineWait.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="pipeline.linked").count() == 1


def test_two_sweeps_at_once_answer_a_run_once(gitlab, github_release, approver):
    factories.decide(github_release, approver, "reject", "Not this week.")
    PipelineWait.objects.create(
        provider="gitlab",
        release=github_release,
        external_id="15",
        environment_name="production",
        callback={"project_id": 30, "deployment_id": 15},
    )

    results = run_together(answer_waiting, answer_waiting)

    assert sorted(results) == [0, 1]
    assert Delivery.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="pipeline.answer_queued").count() == 1

"""GET /metrics: the numbers of a known organisation, exactly, as Prometheus reads them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from approvals import services
from approvals.models import ApprovalStage, Release
from approvals.services.escalation import escalate_overdue_stages
from governance.ledger import checkpoints
from governance.ledger import services as ledger
from governance.ledger.models import LedgerEntry, LedgerHead
from governance.ledger.verification import request_verification, run_verification
from governance.notifications import outbox
from reporting.prometheus.collectors import SignoffCollector
from tests import factories
from tests.reporting.prometheus.conftest import sample, samples
from tests.stubs import Receiver

pytestmark = pytest.mark.django_db
ENVIRONMENTS = ("dev", "production", "staging")


@pytest.fixture
def failing_receiver() -> Iterator[Receiver]:
    stub = Receiver(status=500).start()
    yield stub
    stub.stop()


def request(service, environment, pipeline_bot) -> Release:
    release, _ = services.request_approval(
        data=factories.release_input(service, environment, triggered_by="dave"),
        actor=pipeline_bot,
    )
    return release


def collected(now: datetime) -> dict:
    """What a scrape at `now` says: the view's own collector, at a time the test chooses."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SignoffCollector(now=now))
    return samples(generate_latest(registry).decode())


def by_environment(name: str, **counts: int) -> dict:
    return {sample(name, environment=env): float(counts.get(env, 0)) for env in ENVIRONMENTS}


def quiet(ledger_entries: int) -> dict:
    """Every sample of an organisation where nothing is waiting, counted or queued."""
    return {
        **by_environment("signoff_approvals_pending"),
        **by_environment("signoff_stages_overdue"),
        sample("signoff_counters_up"): 1.0,
        **{
            sample("signoff_gate_answers_total", via=via, status=status): 0.0
            for via in ("api", "azure")
            for status in ("approved", "pending", "rejected", "blocked", "expired")
        },
        sample("signoff_admission_reviews_total", verdict="allowed"): 0.0,
        sample("signoff_admission_reviews_total", verdict="denied"): 0.0,
        sample("signoff_escalations_total"): 0.0,
        sample("signoff_unapproved_deployments_total"): 0.0,
        sample("signoff_outbox_deliveries", state="pending"): 0.0,
        sample("signoff_outbox_deliveries", state="retrying"): 0.0,
        sample("signoff_outbox_deliveries", state="given_up"): 0.0,
        sample("signoff_outbox_oldest_pending_age_seconds"): 0.0,
        sample("signoff_ledger_entries"): float(ledger_entries),
        sample("signoff_ledger_entries_unanchored"): float(ledger_entries),
    }


def test_an_organisation_with_nothing_going_on_reads_zero_everywhere(org, scrape):
    metrics = scrape()

    assert metrics == quiet(LedgerHead.objects.get(pk=1).seq)


def test_a_busy_day_is_counted_exactly(
    org,
    service,
    production,
    staging,
    pipeline_bot,
    approver,
    second_approver,
    cab_member,
    api,
    scrape,
    failing_receiver,
):
    # Given: one production release approved by everyone its plan asks for, one staging release
    # rejected through the API, and three waiting (two in production, one in staging), one of
    # them with its first stage past due and escalated to the CAB.
    approved = request(service, production, pipeline_bot)
    for person in (approver, second_approver, cab_member):
        factories.decide(approved, person)
    rejected = request(service, staging, pipeline_bot)
    refusal = api(second_approver).post(
        f"/api/v1/releases/{rejected.pk}/decisions/",
        {"decision": "reject", "rationale": "The migration is not reversible."},
    )
    assert refusal.status_code == 201
    overdue = request(service, production, pipeline_bot)
    waiting = request(service, production, pipeline_bot)
    request(service, staging, pipeline_bot)
    ApprovalStage.objects.filter(request__release=overdue, status="active").update(
        due_at=timezone.now() - timedelta(hours=2), escalate_at=timezone.now() - timedelta(hours=1)
    )
    assert escalate_overdue_stages() == 1
    # The pipeline asks the gate twice for the approved release and once for a waiting one,
    # then deploys the waiting one anyway.
    pipeline = api(pipeline_bot)
    gate_answers = [
        pipeline.get(f"/api/v1/releases/{release.pk}/gate").json()["status"]
        for release in (approved, approved, waiting)
    ]
    assert gate_answers == ["approved", "approved", "pending"]
    deployed = pipeline.post(f"/api/v1/releases/{waiting.pk}/deployments/", {"status": "succeeded"})
    assert deployed.json()["deployment"]["approved"] is False
    # A webhook whose receiver answers 500: its first try failed, it will be tried again.
    outbox.enqueue(channel="webhook", kind="release.decided", url=failing_receiver.url, payload={})
    assert outbox.deliver_due() == 0
    assert len(failing_receiver.received) == 1

    metrics = scrape()

    oldest = metrics.pop(sample("signoff_outbox_oldest_pending_age_seconds"))
    assert 0 < oldest < 60
    entries = LedgerHead.objects.get(pk=1).seq
    assert entries == LedgerEntry.objects.count()
    expected = quiet(entries) | {
        **by_environment("signoff_approvals_pending", production=2, staging=1),
        **by_environment("signoff_stages_overdue", production=1),
        sample("signoff_gate_answers_total", via="api", status="approved"): 2.0,
        sample("signoff_gate_answers_total", via="api", status="pending"): 1.0,
        sample("signoff_decisions_total", verdict="approve", channel="ui"): 3.0,
        sample("signoff_decisions_total", verdict="reject", channel="api"): 1.0,
        sample("signoff_escalations_total"): 1.0,
        sample("signoff_unapproved_deployments_total"): 1.0,
        sample("signoff_outbox_deliveries", state="retrying"): 1.0,
    }
    del expected[sample("signoff_outbox_oldest_pending_age_seconds")]
    assert metrics == expected


def test_the_oldest_delivery_still_to_send_gives_the_backlogs_age(org, failing_receiver):
    delivery = outbox.enqueue(
        channel="webhook", kind="release.decided", url=failing_receiver.url, payload={}
    )

    metrics = collected(delivery.created_at + timedelta(minutes=7))

    assert metrics[sample("signoff_outbox_deliveries", state="pending")] == 1.0
    assert metrics[sample("signoff_outbox_oldest_pending_age_seconds")] == 420.0


def test_a_delivery_given_up_is_counted_until_someone_sends_it_again(
    org, failing_receiver, administrator, scrape
):
    delivery = outbox.enqueue(
        channel="webhook", kind="release.decided", url=failing_receiver.url, payload={}
    )
    now = timezone.now()
    for attempt in range(outbox.MAX_ATTEMPTS):
        outbox.deliver_due(now + timedelta(hours=2 * attempt))
    given_up = scrape()
    outbox.redeliver(delivery=delivery, actor=administrator, reason="Receiver fixed.")
    sent_again = scrape()

    assert len(failing_receiver.received) == outbox.MAX_ATTEMPTS
    assert given_up[sample("signoff_outbox_deliveries", state="given_up")] == 1.0
    assert given_up[sample("signoff_outbox_deliveries", state="retrying")] == 0.0
    assert sent_again[sample("signoff_outbox_deliveries", state="given_up")] == 0.0
    assert sent_again[sample("signoff_outbox_deliveries", state="pending")] == 1.0


def test_the_checkpoint_age_and_what_it_leaves_unanchored(org, production_release, approver):
    written = checkpoints.write_checkpoint().stored.checkpoint
    factories.decide(production_release, approver)
    recorded = datetime.fromisoformat(written.recorded_at)

    metrics = collected(recorded + timedelta(minutes=90))

    head = LedgerHead.objects.get(pk=1).seq
    assert head > written.seq
    assert metrics[sample("signoff_ledger_checkpoint_age_seconds")] == 5400.0
    assert metrics[sample("signoff_ledger_entries_unanchored")] == float(head - written.seq)
    assert metrics[sample("signoff_ledger_entries")] == float(head)


def test_a_checkpoint_written_just_now_is_seconds_old(org, scrape):
    ledger.append(kind="test.event", subject="test:1", actor="test", payload={})
    checkpoints.write_checkpoint()

    metrics = scrape()

    assert 0 <= metrics[sample("signoff_ledger_checkpoint_age_seconds")] < 60
    assert metrics[sample("signoff_ledger_entries_unanchored")] == 0.0


def test_the_checkpoint_store_is_looked_up_once_a_minute_not_at_every_scrape(
    org, scrape, monkeypatch
):
    ledger.append(kind="test.event", subject="test:1", actor="test", payload={})
    checkpoints.write_checkpoint()
    listings = []
    list_names = checkpoints.checkpoint_names
    monkeypatch.setattr(checkpoints, "checkpoint_names", lambda: listings.append(1) or list_names())

    first, second = scrape(), scrape()

    assert len(listings) == 1
    age = sample("signoff_ledger_checkpoint_age_seconds")
    assert 0 <= first[age] <= second[age] < 60


def test_an_unreadable_latest_checkpoint_leaves_the_age_out(org, scrape, ledger_checkpoints):
    ledger.append(kind="test.event", subject="test:1", actor="test", payload={})
    checkpoints.write_checkpoint()
    (ledger_checkpoints / "checkpoint-999999999999-20990101T000000000000Z.json").write_text("{}")

    metrics = scrape()

    assert sample("signoff_ledger_checkpoint_age_seconds") not in metrics
    head = LedgerHead.objects.get(pk=1).seq
    assert metrics[sample("signoff_ledger_entries_unanchored")] == float(head)


def test_the_latest_ledger_verification_says_whether_it_failed(
    org, auditor, scrape, ledger_checkpoints, django_capture_on_commit_callbacks
):
    def verify() -> None:
        # The run is handed over after commit, as to the Celery task, and run here.
        with django_capture_on_commit_callbacks(execute=True):
            request_verification(actor=auditor, enqueue=run_verification)

    ledger.append(kind="test.event", subject="test:1", actor="test", payload={})
    before = scrape()
    verify()
    passed = scrape()
    # A checkpoint file that is not one: the next verification fails on it.
    ledger_checkpoints.mkdir(parents=True, exist_ok=True)
    (ledger_checkpoints / "checkpoint-000000000001-20990101T000000000000Z.json").write_text("{}")
    verify()
    failed = scrape()

    assert sample("signoff_ledger_verification_failed") not in before
    assert passed[sample("signoff_ledger_verification_failed")] == 0.0
    assert failed[sample("signoff_ledger_verification_failed")] == 1.0

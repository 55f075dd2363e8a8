"""The outbox: each receiver's call is its own row, retried with backoff, never lost, never
sent twice by two workers at once, never sent anywhere else, and sent again only on request."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from governance.ledger.models import LedgerEntry
from governance.models import Delivery
from governance.notifications import outbox
from governance.notifications.outbox import deliver_due, enqueue, redeliver
from governance.tasks import deliver_outbox_task
from tests import factories
from tests.stubs import Receiver

pytestmark = pytest.mark.django_db
SECRET = "shared-webhook-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    stub = Receiver().start()
    yield stub
    stub.stop()


def a_call(url: str, **overrides) -> Delivery:
    values = {
        "channel": "webhook",
        "kind": "release.decided",
        "subject": "release:12",
        "url": url,
        "payload": {"id": 7, "kind": "release.decided", "payload": {"status": "approved"}},
        "credentials": {"secret": SECRET},
    }
    return enqueue(**{**values, **overrides})


def reloaded(delivery: Delivery) -> Delivery:
    delivery.refresh_from_db()
    return delivery


def test_a_call_is_posted_signed_with_its_delivery_id_and_marked_delivered(receiver):
    delivery = a_call(receiver.url)
    now = timezone.now()

    assert deliver_due(now) == 1

    [request] = receiver.received
    assert request.path == "/hooks/signoff?token=s3cret"
    assert json.loads(request.body) == delivery.payload
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Signoff-Event"] == "release.decided"
    assert request.headers["X-Signoff-Delivery"] == str(delivery.delivery_id)
    # The receiver's check, written independently: HMAC-SHA256 of the raw bytes received.
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signoff-Signature"] == f"sha256={expected}"
    delivery = reloaded(delivery)
    assert (delivery.status, delivery.delivered_at, delivery.attempts) == ("delivered", now, 1)
    assert (delivery.last_error, delivery.last_status_code) == ("", 204)
    assert deliver_due(now + timedelta(hours=2)) == 0
    assert len(receiver.received) == 1


def test_without_a_secret_calls_are_sent_unsigned(receiver):
    a_call(receiver.url, credentials={})
    assert deliver_due() == 1
    assert "X-Signoff-Signature" not in receiver.received[0].headers


def test_a_failing_receiver_is_retried_after_1_2_4_minutes_up_to_an_hour_then_given_up(receiver):
    receiver.status = 503
    delivery = a_call(receiver.url)
    now = timezone.now()
    waits = []
    for attempt in range(1, 11):
        assert deliver_due(now) == 0
        delivery = reloaded(delivery)
        assert delivery.attempts == attempt and delivery.delivered_at is None
        wait = delivery.next_attempt_at - now
        waits.append(int(wait.total_seconds() // 60))
        # Nothing is sent again before the wait is over.
        assert deliver_due(now + wait - timedelta(seconds=1)) == 0
        assert len(receiver.received) == attempt
        now += wait

    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert delivery.status == "failed"
    assert delivery.last_status_code == 503
    assert delivery.last_error == (
        "Gave up after 10 attempts. 127.0.0.1: answered 503 Service Unavailable"
    )
    # Given up: kept, never sent again by the sweep, even when the receiver recovers.
    receiver.status = 204
    assert deliver_due(now + timedelta(days=1)) == 0
    assert len(receiver.received) == 10


def test_a_receiver_down_then_up_gets_the_call_on_the_next_attempt_once(receiver):
    port = receiver.server.server_port
    receiver.stop()
    delivery = a_call(receiver.url)
    now = timezone.now()

    assert deliver_due(now) == 0
    delivery = reloaded(delivery)
    assert delivery.attempts == 1 and delivery.status == "pending"
    assert delivery.last_error == "127.0.0.1: could not be reached (ConnectionError)"
    assert "s3cret" not in delivery.last_error  # The URL's secret never lands on the page.

    back = Receiver().start(port=port)
    try:
        assert deliver_due(now + timedelta(minutes=1)) == 1
        assert deliver_due(now + timedelta(hours=1)) == 0
        ids = [r.headers["X-Signoff-Delivery"] for r in back.received]
        assert ids == [str(delivery.delivery_id)]
    finally:
        back.stop()
        receiver.server = back.server  # the fixture's stop() closes it again harmlessly


def test_an_answer_slower_than_the_timeout_is_a_failure(receiver, monkeypatch):
    monkeypatch.setattr(outbox, "TIMEOUT_SECONDS", 0.3)
    receiver.delay = 1.0
    delivery = a_call(receiver.url)
    started = time.monotonic()
    assert deliver_due() == 0
    assert time.monotonic() - started < 1.0
    assert reloaded(delivery).last_error == "127.0.0.1: no answer within 0.3 s"


def test_receivers_fail_and_retry_independently_so_none_hears_a_call_twice(receiver):
    second = Receiver(status=500).start()
    try:
        first_call, second_call = a_call(receiver.url), a_call(second.url)
        now = timezone.now()
        assert deliver_due(now) == 1
        second.status = 200
        assert deliver_due(now + timedelta(minutes=1)) == 1
        assert [r.headers["X-Signoff-Delivery"] for r in receiver.received] == [
            str(first_call.delivery_id)
        ]
        # The failing receiver heard its call twice, under the same delivery id.
        assert {r.headers["X-Signoff-Delivery"] for r in second.received} == {
            str(second_call.delivery_id)
        }
        assert len(second.received) == 2
    finally:
        second.stop()


def test_a_redirect_is_not_followed_and_counts_as_a_failure(receiver):
    elsewhere = Receiver().start()
    receiver.status = 302
    receiver.location = elsewhere.url
    try:
        delivery = a_call(receiver.url)
        assert deliver_due() == 0
        assert elsewhere.received == []
        assert reloaded(delivery).last_error == "127.0.0.1: answered 302 Found"
    finally:
        elsewhere.stop()


def test_a_channel_that_is_not_installed_is_a_failure_not_a_crash(receiver):
    delivery = a_call(receiver.url, channel="carrier-pigeon")
    assert deliver_due() == 0
    assert receiver.received == []
    assert reloaded(delivery).last_error == "no channel 'carrier-pigeon' is installed"


def test_a_call_queued_in_a_rolled_back_transaction_is_never_sent(receiver):
    with pytest.raises(RuntimeError), transaction.atomic():
        a_call(receiver.url)
        raise RuntimeError("the cause failed")
    assert Delivery.objects.count() == 0
    assert deliver_due() == 0
    assert receiver.received == []


def test_queueing_kicks_delivery_once_the_transaction_commits(
    receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        a_call(receiver.url)
    assert callbacks == [outbox.KICKER.kick]


def test_the_beat_task_delivers_due_calls(receiver):
    a_call(receiver.url)
    a_call(receiver.url, kind="release.requested", subject="release:13")
    assert deliver_outbox_task() == 2
    kinds = [r.headers["X-Signoff-Event"] for r in receiver.received]
    assert kinds == ["release.decided", "release.requested"]


# SQLite has no row locks to skip: two workers there wait on the whole database instead.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_deliver_each_call_exactly_once(receiver):
    receiver.delay = 0.2  # keeps the first worker busy while the second looks for work
    queued = sorted(str(a_call(receiver.url, subject=f"release:{n}").delivery_id) for n in range(4))
    now = timezone.now()
    results: list[int] = []

    def worker() -> None:
        try:
            results.append(deliver_due(now))
        finally:
            connection.close()  # each thread's own connection

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)

    assert sorted(r.headers["X-Signoff-Delivery"] for r in receiver.received) == queued
    assert sum(results) == 4
    assert Delivery.objects.filter(status="delivered", attempts=1).count() == 4


def test_redelivering_a_given_up_call_sends_it_again_under_the_same_id_and_is_ledgered(receiver):
    admin = factories.UserFactory(username="root")
    delivery = a_call(receiver.url)
    Delivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempts=10, last_error="Gave up after 10 attempts."
    )

    redeliver(delivery=delivery, actor=admin, reason="receiver fixed")

    delivery = reloaded(delivery)
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    entry = LedgerEntry.objects.get(kind="outbox.redelivered")
    assert (entry.subject, entry.actor) == (f"delivery:{delivery.delivery_id}", "root")
    assert entry.payload == {
        "kind": "release.decided",
        "channel": "webhook",
        "was": "failed",
        "reason": "receiver fixed",
    }
    assert deliver_due() == 1
    assert [r.headers["X-Signoff-Delivery"] for r in receiver.received] == [
        str(delivery.delivery_id)
    ]

"""Receivers that are down, failing or slow: the outbox retries on its backoff schedule, delivers
each call once it is answered, and never drops one. Real HTTP to stubs on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta

import pytest

from governance.models import Delivery
from governance.notifications import outbox
from tests.ops.conftest import free_port
from tests.stubs import Receiver

pytestmark = pytest.mark.django_db
PATH = "/hooks/signoff"


@pytest.mark.parametrize("channel", ["slack", "webhook"])
def test_a_receiver_down_then_failing_then_back_gets_the_call_once_after_the_backoff(channel):
    port = free_port()  # nothing listens yet: connection refused, as when the receiver is down
    delivery = outbox.enqueue(
        channel=channel,
        kind="release.approved",
        url=f"http://127.0.0.1:{port}{PATH}",
        payload={"text": "payments-api 2.14.0 is approved for production"},
    )
    start = delivery.next_attempt_at

    assert outbox.deliver_due(now=start) == 0
    assert _state(delivery) == (
        "pending",
        1,
        None,
        "127.0.0.1: could not be reached (ConnectionError)",
        start + timedelta(minutes=1),
    )
    # Not before its time: the next try waits the first step of the backoff.
    assert outbox.deliver_due(now=start + timedelta(seconds=59)) == 0
    assert _state(delivery)[1] == 1

    receiver = Receiver(status=500, path=PATH).start(port)
    try:
        first_retry = start + timedelta(minutes=1)
        assert outbox.deliver_due(now=first_retry) == 0
        assert _state(delivery) == (
            "pending",
            2,
            500,
            "127.0.0.1: answered 500 Internal Server Error",
            first_retry + timedelta(minutes=2),
        )
        assert outbox.deliver_due(now=first_retry + timedelta(seconds=119)) == 0
        assert len(receiver.received) == 1

        receiver.status = 204  # recovered
        second_retry = first_retry + timedelta(minutes=2)
        assert outbox.deliver_due(now=second_retry) == 1
        assert outbox.deliver_due(now=second_retry + timedelta(hours=2)) == 0
    finally:
        receiver.stop()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == (
        "delivered",
        3,
        second_retry,
    )
    # Two requests reached the receiver (the 500 and the 204), the same call both times.
    assert [r.headers["X-Signoff-Delivery"] for r in receiver.received] == [
        str(delivery.delivery_id)
    ] * 2
    assert receiver.received[0].body == receiver.received[1].body


def test_a_call_whose_answer_was_lost_is_sent_again_under_the_same_delivery_id(monkeypatch):
    # The receiver acts on the call, then answers too late: Signoff cannot know it was received.
    monkeypatch.setattr(outbox, "TIMEOUT_SECONDS", 0.5)
    receiver = Receiver(status=204, delay=1.5).start()
    try:
        delivery = outbox.enqueue(
            channel="webhook",
            kind="release.approved",
            url=receiver.url,
            payload={"release": 14, "status": "approved"},
            credentials={"secret": "shared-secret"},
        )
        start = delivery.next_attempt_at
        assert outbox.deliver_due(now=start) == 0
        assert _state(delivery)[:4] == ("pending", 1, None, "127.0.0.1: no answer within 0.5 s")

        receiver.delay = 0
        assert outbox.deliver_due(now=start + timedelta(minutes=1)) == 1
    finally:
        receiver.stop()

    # At least once, never silently lost; the receiver sees the same id, body and signature on
    # the retry, so one that remembers the ids it acted on acts once.
    first, retry = receiver.received
    assert (
        first.headers["X-Signoff-Delivery"]
        == retry.headers["X-Signoff-Delivery"]
        == str(delivery.delivery_id)
    )
    assert first.body == retry.body
    assert first.headers["X-Signoff-Signature"] == retry.headers["X-Signoff-Signature"]
    assert Delivery.objects.get(pk=delivery.pk).status == "delivered"


def _state(delivery: Delivery) -> tuple:
    delivery.refresh_from_db()
    return (
        delivery.status,
        delivery.attempts,
        delivery.last_status_code,
        delivery.last_error,
        delivery.next_attempt_at,
    )

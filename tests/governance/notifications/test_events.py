"""Outbound events: signed POSTs to the configured webhooks, retried with backoff, never lost,
never sent twice by two workers at once, never sent anywhere else."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from governance.models import OutboundEvent
from governance.notifications import events
from governance.notifications.events import deliver_events, publish_event
from governance.tasks import deliver_events_task
from tests import factories

pytestmark = pytest.mark.django_db
SECRET = "shared-webhook-secret"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers `status`."""

    status: int = 204
    delay: float = 0.0
    location: str = ""
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/signoff?token=s3cret"

    def start(self, port: int = 0) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(Received(self.path, dict(self.headers), body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    stub = Receiver().start()
    settings.SIGNOFF_EVENT_WEBHOOKS = [stub.url]
    settings.SIGNOFF_EVENT_WEBHOOK_SECRET = SECRET
    yield stub
    stub.stop()


def an_event(**overrides) -> OutboundEvent:
    values = {
        "kind": "emergency.declared",
        "subject": "release:12",
        "payload": {"service": "payments-api", "controls": ["extra_monitoring"]},
    }
    return publish_event(**{**values, **overrides})


def pending(event: OutboundEvent) -> OutboundEvent:
    event.refresh_from_db()
    return event


def test_an_event_is_posted_signed_with_its_document_and_marked_delivered(receiver):
    event = an_event()
    now = timezone.now()

    assert deliver_events(now) == 1

    [request] = receiver.received
    assert request.path == "/hooks/signoff?token=s3cret"
    assert json.loads(request.body) == {
        "id": event.pk,
        "kind": "emergency.declared",
        "subject": "release:12",
        "created_at": event.created_at.isoformat(),
        "payload": {"service": "payments-api", "controls": ["extra_monitoring"]},
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Signoff-Event"] == "emergency.declared"
    assert request.headers["X-Signoff-Delivery"] == str(event.pk)
    # The receiver's check, written independently: HMAC-SHA256 of the raw bytes received.
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signoff-Signature"] == f"sha256={expected}"
    event = pending(event)
    assert (event.delivered_at, event.attempts, event.last_error) == (now, 1, "")
    assert deliver_events(now + timedelta(hours=2)) == 0
    assert len(receiver.received) == 1


def test_a_signature_under_another_secret_does_not_verify(receiver):
    an_event()
    deliver_events()
    [request] = receiver.received
    forged = hmac.new(b"another secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signoff-Signature"] != f"sha256={forged}"


def test_without_a_secret_events_are_sent_unsigned(receiver, settings):
    settings.SIGNOFF_EVENT_WEBHOOK_SECRET = ""
    an_event()
    assert deliver_events() == 1
    assert "X-Signoff-Signature" not in receiver.received[0].headers


def test_a_failing_receiver_is_retried_after_1_2_4_minutes_up_to_an_hour_then_given_up(receiver):
    receiver.status = 503
    event = an_event()
    now = timezone.now()
    waits = []
    for attempt in range(1, 11):
        assert deliver_events(now) == 0
        event = pending(event)
        assert event.attempts == attempt and event.delivered_at is None
        wait = event.next_attempt_at - now
        waits.append(int(wait.total_seconds() // 60))
        # Nothing is sent again before the wait is over.
        assert deliver_events(now + wait - timedelta(seconds=1)) == 0
        assert len(receiver.received) == attempt
        now += wait

    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert event.last_error == (
        "Gave up after 10 attempts. endpoint 1 (127.0.0.1): answered 503 Service Unavailable"
    )
    # Given up: kept, never sent again, even when the receiver recovers.
    receiver.status = 204
    assert deliver_events(now + timedelta(days=1)) == 0
    assert len(receiver.received) == 10
    assert pending(event).delivered_at is None


def test_a_receiver_down_then_up_gets_the_event_on_the_next_attempt(receiver, settings):
    port = receiver.server.server_port
    receiver.stop()
    event = an_event()
    now = timezone.now()

    assert deliver_events(now) == 0
    event = pending(event)
    assert event.attempts == 1
    assert event.last_error == "endpoint 1 (127.0.0.1): could not be reached (ConnectionError)"
    assert "s3cret" not in event.last_error  # The URL's secret never lands in the admin.

    back = Receiver().start(port=port)
    try:
        assert deliver_events(now + timedelta(minutes=1)) == 1
        assert [json.loads(r.body)["id"] for r in back.received] == [event.pk]
        assert pending(event).attempts == 2 and pending(event).last_error == ""
    finally:
        back.stop()
        receiver.server = back.server  # the fixture's stop() closes it again harmlessly


def test_an_answer_slower_than_the_timeout_is_a_failure(receiver, monkeypatch):
    monkeypatch.setattr(events, "TIMEOUT_SECONDS", 0.3)
    receiver.delay = 1.0
    event = an_event()
    started = time.monotonic()
    assert deliver_events() == 0
    assert time.monotonic() - started < 1.0
    assert pending(event).last_error == "endpoint 1 (127.0.0.1): no answer within 0.3 s"


def test_every_endpoint_must_answer_2xx_and_a_retry_goes_to_all_again(receiver, settings):
    second = Receiver(status=500).start()
    settings.SIGNOFF_EVENT_WEBHOOKS = [receiver.url, second.url]
    try:
        event = an_event()
        now = timezone.now()
        assert deliver_events(now) == 0
        assert pending(event).last_error == (
            "endpoint 2 (127.0.0.1): answered 500 Internal Server Error"
        )
        second.status = 200
        assert deliver_events(now + timedelta(minutes=1)) == 1
        # At least once: the first endpoint hears it twice, under the same delivery id.
        ids = [r.headers["X-Signoff-Delivery"] for r in receiver.received]
        assert ids == [str(event.pk), str(event.pk)]
        assert len(second.received) == 2
    finally:
        second.stop()


def test_a_redirect_is_not_followed_and_counts_as_a_failure(receiver):
    elsewhere = Receiver().start()
    receiver.status = 302
    receiver.location = elsewhere.url
    try:
        event = an_event()
        assert deliver_events() == 0
        assert elsewhere.received == []
        assert pending(event).last_error == "endpoint 1 (127.0.0.1): answered 302 Found"
    finally:
        elsewhere.stop()


def test_without_an_endpoint_events_are_closed_unsent_and_not_replayed_later(settings):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    event = an_event()
    now = timezone.now()

    assert deliver_events(now) == 0
    event = pending(event)
    assert (event.delivered_at, event.attempts, event.last_error) == (
        now,
        0,
        "no endpoint configured",
    )

    stub = Receiver().start()
    settings.SIGNOFF_EVENT_WEBHOOKS = [stub.url]
    try:
        assert deliver_events(now + timedelta(minutes=5)) == 0
        assert stub.received == []
    finally:
        stub.stop()


def test_an_event_published_in_a_rolled_back_transaction_is_never_sent(receiver):
    with pytest.raises(RuntimeError), transaction.atomic():
        an_event()
        raise RuntimeError("the cause failed")
    assert OutboundEvent.objects.count() == 0
    assert deliver_events() == 0
    assert receiver.received == []


def test_publishing_kicks_delivery_once_the_transaction_commits(
    receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        an_event()
    assert callbacks == [events.KICKER.kick]


def test_the_beat_task_delivers_due_events(receiver):
    an_event()
    an_event(kind="release.flagged", subject="release:13")
    assert deliver_events_task() == 2
    kinds = [r.headers["X-Signoff-Event"] for r in receiver.received]
    assert kinds == ["emergency.declared", "release.flagged"]


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_deliver_each_event_exactly_once(receiver):
    receiver.delay = 0.2  # keeps the first worker busy while the second looks for work
    published = [an_event(subject=f"release:{n}").pk for n in range(4)]
    now = timezone.now()
    results: list[int] = []

    def worker() -> None:
        try:
            results.append(deliver_events(now))
        finally:
            connection.close()  # each thread's own connection

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)

    delivered = sorted(json.loads(r.body)["id"] for r in receiver.received)
    assert delivered == published
    assert sum(results) == 4
    assert OutboundEvent.objects.filter(delivered_at__isnull=False, attempts=1).count() == 4


def test_given_up_events_are_listed_read_only_in_the_admin(client, receiver):
    admin = factories.UserFactory(username="root", is_staff=True, is_superuser=True)
    event = an_event()
    OutboundEvent.objects.filter(pk=event.pk).update(
        attempts=10, last_error="Gave up after 10 attempts. endpoint 1 (hooks): answered 500"
    )
    client.force_login(admin)

    listing = client.get(reverse("admin:governance_outboundevent_changelist"))
    assert listing.status_code == 200
    assert "Gave up after 10 attempts." in listing.content.decode()
    assert client.get(reverse("admin:governance_outboundevent_add")).status_code == 403
    page = client.post(
        reverse("admin:governance_outboundevent_change", args=[event.pk]), {"attempts": 0}
    )
    assert pending(event).attempts == 10
    assert page.status_code == 403

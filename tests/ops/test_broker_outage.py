"""A broker outage never makes a web request wait: notifications stay queued and beat sends them."""

from __future__ import annotations

import time

import pytest
from django.core import mail

from config.celery import app
from governance.models import Delivery, Notification
from governance.notifications import outbox
from governance.notifications import services as notifications
from governance.tasks import deliver_outbox_task
from tests import factories
from tests.ops.servers import (
    CeleryWorker,
    RedisServer,
    broker_at,
    worker_environment,
)
from tests.stubs import Receiver

pytestmark = pytest.mark.django_db
# Nothing listens on port 1: connections are refused at once, as when Redis is down.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


def timed_release_request(api_client, capture_on_commit) -> tuple[float, int]:
    """Seconds for POST /api/v1/releases/ including its after-commit work, and the status."""
    started = time.monotonic()
    with capture_on_commit(execute=True):
        response = api_client.post("/api/v1/releases/", factories.release_body())
    return time.monotonic() - started, response.status_code


def test_requests_answer_as_fast_with_the_broker_down_and_nothing_is_lost(
    org, pipeline_bot, api, django_capture_on_commit_callbacks
):
    pipeline = api(pipeline_bot)
    timed_release_request(pipeline, django_capture_on_commit_callbacks)  # warm-up: policies, caches
    Notification.objects.all().delete()

    with broker_at(app.conf.broker_url):  # the configured broker, up
        up, status = timed_release_request(pipeline, django_capture_on_commit_callbacks)
        assert status == 201
        assert notifications.KICKER.wait_idle(timeout=15)
    with broker_at(UNREACHABLE_BROKER):
        down, status = timed_release_request(pipeline, django_capture_on_commit_callbacks)
        assert status == 201
        # The kick was tried in the background and gave up within the short broker timeouts.
        started = time.monotonic()
        assert notifications.KICKER.wait_idle(timeout=15)
        assert time.monotonic() - started < 5

    assert down < 1.0, f"broker down: {down:.2f} s (up: {up:.2f} s)"
    assert down < up + 0.5, f"broker down: {down:.2f} s, up: {up:.2f} s"
    # The approvers' notifications of both releases wait in the outbox; beat's sweep sends them.
    queued = Notification.objects.filter(delivered_at__isnull=True)
    assert queued.count() == Notification.objects.count() >= 2
    assert notifications.deliver_pending() == Notification.objects.count()
    assert len(mail.outbox) == Notification.objects.count()


def test_kicks_arriving_together_coalesce_into_one_or_two_broker_sends(db):
    with broker_at(UNREACHABLE_BROKER):
        before = notifications.KICKER.attempts
        started = time.monotonic()
        for _ in range(50):
            notifications.KICKER.kick()
        assert time.monotonic() - started < 0.1  # handing over never waits
        assert notifications.KICKER.wait_idle(timeout=15)
    # A send may already be under way when the next kicks arrive: those fold into one more.
    assert 1 <= notifications.KICKER.attempts - before <= 2


def test_outbound_calls_wait_out_a_broker_outage_and_are_sent_once_when_it_returns(
    org, pipeline_bot, api, django_capture_on_commit_callbacks, settings
):
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = True  # the stub listens on 127.0.0.1
    receiver = Receiver().start()
    settings.SIGNOFF_EVENT_WEBHOOKS = [receiver.url]
    try:
        with broker_at(UNREACHABLE_BROKER):
            _, status = timed_release_request(api(pipeline_bot), django_capture_on_commit_callbacks)
            assert status == 201
            assert outbox.KICKER.wait_idle(timeout=15)
        # Nothing could be handed to a worker: the call waits in the outbox.
        [waiting] = Delivery.objects.filter(kind="release.requested")
        assert waiting.status == "pending" and receiver.received == []

        # The broker is back: beat's sweep sends it, once, however often it runs.
        assert deliver_outbox_task() == 1
        assert deliver_outbox_task() == 0
        assert [r.headers["X-Signoff-Delivery"] for r in receiver.received] == [
            str(waiting.delivery_id)
        ]
    finally:
        receiver.stop()


def test_readiness_stays_200_and_says_degraded_while_the_broker_is_down(client):
    with broker_at(UNREACHABLE_BROKER):
        started = time.monotonic()
        response = client.get("/readyz")
    assert time.monotonic() - started < 5
    # Requests and decisions go on without Redis: the web process stays in service.
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "broker": "error: OperationalError", "static": "ok"},
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_redis_outage_slows_no_decision_and_its_calls_are_sent_once_when_redis_returns(
    org, production_release, approver, pipeline_bot, api, settings, tmp_path
):
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = True  # the stub listens on 127.0.0.1
    receiver = Receiver().start()
    settings.SIGNOFF_EVENT_WEBHOOKS = [receiver.url]
    redis_server = RedisServer(tmp_path).start()
    # The cache (failed-token counters) lives on the same Redis and goes down with it.
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": redis_server.url(1)}}
    redis_server.stop()
    pipeline, alice = api(pipeline_bot), api(approver)
    decision = {
        "decision": "approve",
        "rationale": "Read the diff",
        "digest": production_release.digest,
    }
    worker = None
    try:
        with broker_at(redis_server.url()):
            pipeline.post("/api/v1/releases/", factories.release_body())  # warm-up: policies
            request_seconds, requested = timed(
                lambda: pipeline.post("/api/v1/releases/", factories.release_body())
            )
            decide_seconds, decided = timed(
                lambda: alice.post(f"/api/v1/releases/{production_release.pk}/decisions/", decision)
            )
            assert outbox.KICKER.wait_idle(timeout=15)
        assert (requested.status_code, decided.status_code) == (201, 201), decided.content
        assert request_seconds < 1.5 and decide_seconds < 1.5, (request_seconds, decide_seconds)
        assert production_release.approval.decisions.filter(approver=approver).count() == 1
        waiting = list(Delivery.objects.values_list("delivery_id", flat=True))
        assert Delivery.objects.filter(status="pending").count() == len(waiting) >= 2
        assert receiver.received == []

        redis_server.start()
        worker = CeleryWorker(worker_environment(tmp_path, redis_server.url()), tmp_path / "w.log")
        with broker_at(redis_server.url()):
            # What beat does every minute; once more, as the next minute would.
            sweep = app.send_task(outbox.DELIVERY_TASK)
            assert sweep.get(timeout=30) == len(waiting)
            assert app.send_task(outbox.DELIVERY_TASK).get(timeout=30) == 0
        sent = sorted(r.headers["X-Signoff-Delivery"] for r in receiver.received)
        assert sent == sorted(str(delivery_id) for delivery_id in waiting)
        assert Delivery.objects.filter(status="delivered").count() == len(waiting)
    finally:
        if worker:
            worker.stop()
        redis_server.stop()
        receiver.stop()


def timed(call):
    """(seconds, what `call` returned)."""
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result

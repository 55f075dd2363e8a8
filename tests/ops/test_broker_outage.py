"""A broker outage never makes a web request wait: notifications stay queued and beat sends them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from django.core import mail
from kombu import pools as kombu_pools

from config.celery import app
from governance.models import Delivery, Notification
from governance.notifications import outbox
from governance.notifications import services as notifications
from governance.tasks import deliver_outbox_task
from tests import factories
from tests.stubs import Receiver

pytestmark = pytest.mark.django_db
# Nothing listens on port 1: connections are refused at once, as when Redis is down.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


@contextlib.contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point Celery's broker and result store at `url`, and back; pools are rebuilt both ways."""
    saved = app.conf.broker_url, app.conf.result_backend
    app.conf.broker_url = app.conf.result_backend = url
    drop_connections()
    try:
        yield
    finally:
        # Let a kick still in flight finish against the broker it started with.
        notifications.KICKER.wait_idle(timeout=15)
        outbox.KICKER.wait_idle(timeout=15)
        app.conf.broker_url, app.conf.result_backend = saved
        drop_connections()


def drop_connections() -> None:
    """Forget Celery's cached broker pools and result store, so the next send reads the URLs.

    Celery has no public call for this; the broker part is what it does after a fork.
    """
    # kombu keeps connection and producer pools in process-wide registries keyed by broker URL:
    # closing them without clearing the registries would leave a closed pool behind for every
    # later test that enqueues a task ("Acquire on closed pool").
    kombu_pools.reset()
    app._after_fork()
    # The result store's client is cached per thread: this thread's is rebuilt from the new URL.
    app._backend_cache = None
    vars(app._local).pop("backend", None)


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

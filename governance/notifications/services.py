"""Telling people what needs them, following the sun: people in working hours first.

Notifications are rows written inside the transaction that causes them (an outbox), then
delivered by e-mail from a Celery task with retries, so a mail-server outage loses nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from governance.notifications.models import Notification
from governance.people.models import User

logger = logging.getLogger(__name__)
DELIVERY_TASK = "governance.tasks.deliver_notifications_task"
MAX_ATTEMPTS = 5
DELIVERY_BATCH = 100


def route(people: Iterable[User], now: datetime) -> tuple[list[User], str]:
    """Who to tell now: those in working hours; if nobody is, whoever starts work soonest."""
    people = [p for p in people if p.is_active and p.email]
    available = [p for p in people if p.is_available_at(now)]
    if available:
        return available, "in working hours now"
    if not people:
        return [], ""
    soonest = min(_next_start(p, now) for p in people)
    first = [p for p in people if _next_start(p, now) == soonest]
    return first, "nobody is in working hours; they start work soonest"


def _next_start(person: User, now: datetime) -> datetime:
    """When `person` next starts work (now or later), as an aware datetime."""
    local = now.astimezone(ZoneInfo(person.time_zone))
    for days in range(8):
        day = (local + timedelta(days=days)).date()
        start = datetime(
            day.year, day.month, day.day, person.working_hours_start, tzinfo=local.tzinfo
        )
        if day.weekday() < 5 and start >= local.replace(minute=0, second=0, microsecond=0):
            return start
    return local + timedelta(days=8)


def notify(
    *, people: Iterable[User], subject: str, body: str, url: str, reason: str = ""
) -> list[Notification]:
    """Queue notifications; they are delivered after the surrounding transaction commits."""
    return queue_notifications(
        [
            Notification(recipient=p, subject=subject, body=body, url=url, reason=reason)
            for p in people
        ]
    )


def queue_notifications(rows: list[Notification]) -> list[Notification]:
    """Queue many prepared notifications at once (a sweep's); delivered after commit."""
    rows = Notification.objects.bulk_create(rows, batch_size=1000)
    if rows:
        transaction.on_commit(_kick_delivery)
    return rows


def _kick_delivery() -> None:
    # After commit, the web request only hands the kick over: it never waits on the broker.
    KICKER.kick()


class DeliveryKicker:
    """One daemon thread per process that asks the worker to deliver, so no request waits on
    the broker. Kicks arriving while a send is under way fold into one more send.

    If the broker is down the send fails fast (no retries, short timeouts in settings) and the
    rows simply wait for beat's sweep (deliver_notifications_task, every minute): the decision
    that caused them has committed and must not fail or stall.
    """

    def __init__(
        self, task_name: str = DELIVERY_TASK, thread_name: str = "notification-delivery-kick"
    ) -> None:
        self.task_name = task_name
        self.thread_name = thread_name
        self._reset()
        # A forked child (a Celery pool process, a gunicorn worker with --preload) has no copy
        # of the thread, and the lock may have been held at fork time: start afresh there.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self._pending = False
        self._sending = False
        self._thread: threading.Thread | None = None
        self.attempts = 0  # sends tried by this process, successful or not

    def kick(self) -> None:
        """Ask for a delivery run; returns at once."""
        with self._condition:
            self._pending = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=self.thread_name, daemon=True
                )
                self._thread.start()
            self._condition.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no kick is pending or being sent; False if `timeout` seconds ran out."""
        with self._condition:
            return self._condition.wait_for(lambda: not (self._pending or self._sending), timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending)
                self._pending, self._sending = False, True
                self.attempts += 1
            try:
                _send_delivery_task(self.task_name)
            finally:
                with self._condition:
                    self._sending = False
                    self._condition.notify_all()


def _send_delivery_task(task_name: str) -> None:
    # By name: the task module imports this one. No retries and no result: a result store on
    # the same Redis would otherwise retry its own connection for 20 s before giving up.
    try:
        current_app.send_task(task_name, retry=False, ignore_result=True)
    except Exception:
        logger.warning("Could not enqueue %s; beat will retry", task_name, exc_info=True)


KICKER = DeliveryKicker()


def deliver_pending(*, now: datetime | None = None) -> int:
    """Send undelivered notifications by e-mail; failures stay queued for the next run."""
    now = now or timezone.now()
    sent, tried = 0, []
    for _ in range(DELIVERY_BATCH):
        # One row per transaction: a worker killed mid-run has its sent rows marked already,
        # so the redelivered task sends again at most the one e-mail that was under way.
        with transaction.atomic():
            notification = (
                Notification.objects.select_for_update(skip_locked=True)
                .filter(delivered_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
                .exclude(pk__in=tried)  # a failure waits for the next run
                .select_related("recipient")
                .order_by("created_at", "pk")
                .first()
            )
            if notification is None:
                break
            tried.append(notification.pk)
            sent += _deliver(notification, now)
    return sent


def _deliver(notification: Notification, now: datetime) -> int:
    link = (
        f"{settings.SITE_URL}{notification.url}"
        if notification.url.startswith("/")
        else notification.url
    )
    try:
        send_mail(
            notification.subject,
            f"{notification.body}\n\n{link}\n",
            settings.DEFAULT_FROM_EMAIL,
            [notification.recipient.email],
        )
    except Exception as exc:  # Any transport error: keep it queued and retry later.
        Notification.objects.filter(pk=notification.pk).update(
            attempts=notification.attempts + 1, last_error=str(exc)[:500]
        )
        return 0
    Notification.objects.filter(pk=notification.pk).update(
        delivered_at=now, attempts=notification.attempts + 1, last_error=""
    )
    return 1

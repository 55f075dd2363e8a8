"""Telling people what needs them, following the sun: people in working hours first.

Notifications are rows written inside the transaction that causes them (an outbox), then
delivered by e-mail from a Celery task with retries, so a mail-server outage loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from governance.models import Notification, User

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
    rows = Notification.objects.bulk_create(
        Notification(recipient=p, subject=subject, body=body, url=url, reason=reason)
        for p in people
    )
    if rows:
        transaction.on_commit(_kick_delivery)
    return rows


def _kick_delivery() -> None:
    # By name: the task module imports this one. If the broker is down the rows simply wait
    # for beat's next run; the decision that caused them has committed and must not fail.
    try:
        current_app.send_task(DELIVERY_TASK)
    except Exception:
        logger.warning("Could not enqueue notification delivery; beat will retry", exc_info=True)


def deliver_pending(*, now: datetime | None = None) -> int:
    """Send undelivered notifications by e-mail; failures stay queued for the next run."""
    now = now or timezone.now()
    sent = 0
    with transaction.atomic():
        batch = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(delivered_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
            .select_related("recipient")
            .order_by("created_at")[:DELIVERY_BATCH]
        )
        for notification in batch:
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

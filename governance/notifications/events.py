"""Outbound events: what other systems (monitoring, chat, SIEM) hear from Signoff.

An event is a row written in the transaction that causes it (an outbox); a Celery task POSTs it
to every configured endpoint, signed, with retries, so a receiver outage loses nothing.

Delivery is at least once: a retry goes to every endpoint again (one that already answered 2xx
hears the event twice), so receivers deduplicate on the X-Signoff-Delivery header (the event's
id). Only the configured URLs are ever called; redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from governance.notifications.models import OutboundEvent
from governance.notifications.services import DeliveryKicker

DELIVERY_TASK = "governance.tasks.deliver_events_task"
MAX_ATTEMPTS = 10
TIMEOUT_SECONDS = 5
DELIVERY_BATCH = 100
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
NO_ENDPOINT = "no endpoint configured"

KICKER = DeliveryKicker(DELIVERY_TASK, "event-delivery-kick")


def publish_event(*, kind: str, subject: str, payload: dict) -> OutboundEvent:
    """Queue an event for delivery once the surrounding transaction commits."""
    event = OutboundEvent.objects.create(kind=kind, subject=subject, payload=payload)
    # A rolled-back cause takes its event with it, and the kick never happens.
    transaction.on_commit(KICKER.kick)
    return event


def deliver_events(now: datetime | None = None) -> int:
    """POST due events to every configured endpoint; returns how many were delivered.

    An event is delivered when every endpoint answered 2xx. Otherwise it is tried again after
    1, 2, 4 ... minutes (at most an hour apart) and given up after MAX_ATTEMPTS tries; given-up
    rows stay, with their last error, in the admin. With no endpoint configured, due events are
    closed at once with last_error NO_ENDPOINT: nothing is sent, and configuring an endpoint
    later does not replay that backlog.
    """
    now = now or timezone.now()
    urls = list(settings.SIGNOFF_EVENT_WEBHOOKS)
    if not urls:
        _close_without_endpoint(now)
        return 0
    # Long enough for every endpoint to time out twice over (connect and read), so a row is
    # never handed to a second worker while the first is still sending it.
    lease = timedelta(seconds=len(urls) * 2 * TIMEOUT_SECONDS + 60)
    delivered = 0
    with requests.Session() as session:
        for _ in range(DELIVERY_BATCH):
            event = _claim(now, lease)
            if event is None:
                break
            error = _post_everywhere(session, event, urls)
            _record(event, error, now)
            delivered += not error
    return delivered


def _due(now: datetime):
    return OutboundEvent.objects.filter(
        delivered_at__isnull=True, attempts__lt=MAX_ATTEMPTS, next_attempt_at__lte=now
    )


def _claim(now: datetime, lease: timedelta) -> OutboundEvent | None:
    """Take the oldest due event for this worker: locked rows are skipped, and the claim moves
    the row's next attempt past the lease, so the HTTP calls run outside any transaction."""
    with transaction.atomic():
        event = (
            _due(now).select_for_update(skip_locked=True).order_by("next_attempt_at", "pk").first()
        )
        if event is not None:
            OutboundEvent.objects.filter(pk=event.pk).update(next_attempt_at=now + lease)
    return event


def _close_without_endpoint(now: datetime) -> int:
    with transaction.atomic():
        due = _due(now).select_for_update(skip_locked=True).values_list("pk", flat=True)
        return OutboundEvent.objects.filter(pk__in=list(due)).update(
            delivered_at=now, last_error=NO_ENDPOINT
        )


def event_body(event: OutboundEvent) -> bytes:
    """The JSON document POSTed for `event`; the signature covers exactly these bytes."""
    document = {
        "id": event.pk,
        "kind": event.kind,
        "subject": event.subject,
        "created_at": event.created_at.isoformat(),
        "payload": event.payload,
    }
    return json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    """The X-Signoff-Signature value: HMAC-SHA256 of the raw body under the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post_everywhere(session: requests.Session, event: OutboundEvent, urls: list[str]) -> str:
    """POST the event to each URL; returns the failures in words ("" when all answered 2xx)."""
    body = event_body(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Signoff-Events/1",
        "X-Signoff-Event": event.kind,
        "X-Signoff-Delivery": str(event.pk),
    }
    if settings.SIGNOFF_EVENT_WEBHOOK_SECRET:
        headers["X-Signoff-Signature"] = sign(body, settings.SIGNOFF_EVENT_WEBHOOK_SECRET)
    failures = []
    for number, url in enumerate(urls, start=1):
        # Webhook URLs often carry their secret in the path or query (chat tools do): errors
        # name the endpoint by number and host only, since admins read last_error.
        endpoint = f"endpoint {number} ({urlsplit(url).hostname})"
        try:
            response = session.post(
                url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
            )
        except requests.Timeout:
            failures.append(f"{endpoint}: no answer within {TIMEOUT_SECONDS} s")
            continue
        except requests.RequestException as exc:
            failures.append(f"{endpoint}: could not be reached ({type(exc).__name__})")
            continue
        if not 200 <= response.status_code < 300:
            failures.append(f"{endpoint}: answered {response.status_code} {response.reason}")
    return "; ".join(failures)


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try: 1, 2, 4 ... minutes, at most 1 h."""
    return min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_RETRY)


def _record(event: OutboundEvent, error: str, now: datetime) -> None:
    attempts = event.attempts + 1
    rows = OutboundEvent.objects.filter(pk=event.pk)
    if not error:
        rows.update(delivered_at=now, attempts=attempts, last_error="")
        return
    if attempts >= MAX_ATTEMPTS:
        error = f"Gave up after {attempts} attempts. {error}"
    rows.update(
        attempts=attempts, last_error=error[:2000], next_attempt_at=now + retry_delay(attempts)
    )

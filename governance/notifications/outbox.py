"""The outbox: every outbound HTTP call Signoff makes, one Delivery row per receiver.

A service writes the row inside the transaction that causes it (`enqueue`); after commit a
Celery task sends it, and beat's sweep every minute picks up whatever a broker outage left
behind. A failed try waits 1, 2, 4 ... minutes (at most an hour) and is given up after
MAX_ATTEMPTS; given-up rows stay on the outbox page with their last error and can be sent again.

Each row is claimed by one worker at a time (row lock, then a lease moved past the HTTP
timeouts) and marked delivered only after the receiver answered 2xx, so an outage loses nothing.
A receiver sees the same `X-Signoff-Delivery` id on every retry of a row and deduplicates on
it: a retry after a lost 2xx is the only way it hears a row twice.

How a row becomes an HTTP request depends on its channel. `webhook`, `slack` and `teams` are
built in; other apps register theirs (the pipeline callbacks) with `register_channel` when
Django starts, so this module never imports them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from governance.ledger import services as ledger
from governance.notifications.models import Delivery
from governance.notifications.services import DeliveryKicker
from governance.people.models import User

DELIVERY_TASK = "governance.tasks.deliver_outbox_task"
MAX_ATTEMPTS = 10
TIMEOUT_SECONDS = 5
DELIVERY_BATCH = 100
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
# Long enough for a call to time out twice over (connect and read) and for a channel's own
# preparation (GitHub's token exchange), so a row is never handed to a second worker while the
# first is still sending it.
LEASE = timedelta(seconds=4 * TIMEOUT_SECONDS + 60)

KICKER = DeliveryKicker(DELIVERY_TASK, "outbox-delivery-kick")


class DeliveryRefused(Exception):
    """A channel cannot build the request (missing configuration): retried like a failure."""


@dataclass
class OutboundRequest:
    """What a channel makes of a row: the HTTP request to send."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


Channel = Callable[[Delivery, requests.Session], OutboundRequest]
_CHANNELS: dict[str, Channel] = {}


def register_channel(name: str, channel: Channel) -> None:
    """Teach the outbox a channel: `channel(delivery, session)` returns the request to send
    (it may call other endpoints first, with `session`, as GitHub's token exchange does)."""
    _CHANNELS[name] = channel


def enqueue(
    *,
    channel: str,
    kind: str,
    url: str,
    payload: dict,
    subject: str = "",
    credentials: dict | None = None,
    **links,
) -> Delivery:
    """Queue one call; it is sent after the surrounding transaction commits (a rolled-back
    cause takes its delivery with it). `links` may name the `event` or `subscription`."""
    delivery = Delivery.objects.create(
        channel=channel,
        kind=kind,
        url=url,
        payload=payload,
        subject=subject,
        credentials=credentials or {},
        **links,
    )
    transaction.on_commit(KICKER.kick)
    return delivery


def enqueue_many(deliveries: list[Delivery]) -> list[Delivery]:
    """Queue prepared deliveries at once (a sweep's); sent after the transaction commits."""
    deliveries = Delivery.objects.bulk_create(deliveries, batch_size=1000)
    if deliveries:
        transaction.on_commit(KICKER.kick)
    return deliveries


def deliver_due(now: datetime | None = None) -> int:
    """Send due deliveries, DELIVERY_BATCH at most per run; returns how many were delivered."""
    now = now or timezone.now()
    delivered = 0
    with requests.Session() as session:
        for _ in range(DELIVERY_BATCH):
            delivery = _claim(now)
            if delivery is None:
                break
            error, code = _send(session, delivery)
            _record(delivery, error, code, now)
            delivered += not error
    return delivered


def redeliver(*, delivery: Delivery, actor: User, reason: str = "") -> Delivery:
    """Send a delivery again (given up, or delivered and lost by the receiver), at once and
    with a fresh set of attempts; the receiver sees the same delivery id. Ledgered."""
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
        previous = delivery.status
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        ledger.append(
            kind="outbox.redelivered",
            subject=f"delivery:{delivery.delivery_id}",
            actor=actor.username,
            payload={
                "kind": delivery.kind,
                "channel": delivery.channel,
                "was": previous,
                "reason": reason,
            },
        )
        transaction.on_commit(KICKER.kick)
    delivery.refresh_from_db()
    return delivery


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try: 1, 2, 4 ... minutes, at most 1 h."""
    return min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_RETRY)


def sign(body: bytes, secret: str) -> str:
    """The X-Signoff-Signature value: HMAC-SHA256 of the raw body under the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def json_body(document: dict) -> bytes:
    return json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def receiver_allowed(url: str) -> str:
    """Why a receiver's URL may not be called ("" when it may): http(s) only, and no private,
    loopback or link-local address unless SIGNOFF_OUTBOUND_ALLOW_PRIVATE is on (a team's
    subscription must not reach into the organisation's own network: cloud metadata, admin
    ports)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "only http(s) URLs with a host can be called"
    if settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE:
        return ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, None)}
    except OSError:
        return f"{parts.hostname} does not resolve"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            return f"{parts.hostname} resolves to a private address ({ip})"
    return ""


def _claim(now: datetime) -> Delivery | None:
    """Take the oldest due row for this worker: locked rows are skipped, and the claim moves the
    row's next attempt past the lease, so the HTTP call runs outside any transaction."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
            .select_for_update(skip_locked=True)
            .order_by("next_attempt_at", "pk")
            .first()
        )
        if delivery is not None:
            Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=now + LEASE)
    return delivery


def _send(session: requests.Session, delivery: Delivery) -> tuple[str, int | None]:
    """Build and send the request; returns the failure in words ("" on 2xx) and the status."""
    channel = _CHANNELS.get(delivery.channel)
    if channel is None:
        return f"no channel '{delivery.channel}' is installed", None
    # Receiver URLs often carry their secret in the path or query (chat tools do): errors name
    # the host only, since administrators read last_error.
    host = urlsplit(delivery.url).hostname
    # Administrators configure every other receiver; a team's subscription is checked again
    # at each send, since what a name resolves to can change after it was saved.
    refused = receiver_allowed(delivery.url) if delivery.subscription_id else ""
    if refused:
        return f"not sent: {refused}", None
    try:
        request = channel(delivery, session)
        response = session.request(
            request.method,
            request.url,
            data=request.body,
            headers={
                "User-Agent": "Signoff-Outbox/1",
                "X-Signoff-Delivery": str(delivery.delivery_id),
                **request.headers,
            },
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except DeliveryRefused as exc:
        return f"not sent: {exc}", None
    except requests.Timeout:
        return f"{host}: no answer within {TIMEOUT_SECONDS} s", None
    except requests.RequestException as exc:
        return f"{host}: could not be reached ({type(exc).__name__})", None
    if not 200 <= response.status_code < 300:
        return f"{host}: answered {response.status_code} {response.reason}", response.status_code
    return "", response.status_code


def _record(delivery: Delivery, error: str, code: int | None, now: datetime) -> None:
    attempts = delivery.attempts + 1
    rows = Delivery.objects.filter(pk=delivery.pk)
    if not error:
        rows.update(
            status=Delivery.Status.DELIVERED,
            delivered_at=now,
            attempts=attempts,
            last_error="",
            last_status_code=code,
        )
        return
    status = Delivery.Status.PENDING
    if attempts >= MAX_ATTEMPTS:
        error, status = f"Gave up after {attempts} attempts. {error}", Delivery.Status.FAILED
    rows.update(
        status=status,
        attempts=attempts,
        last_error=error[:2000],
        last_status_code=code,
        next_attempt_at=now + retry_delay(attempts),
    )


def _webhook(delivery: Delivery, session: requests.Session) -> OutboundRequest:
    """Signed JSON: the payload as it is, signed with the subscription's secret (or the
    organisation-wide event secret for SIGNOFF_EVENT_WEBHOOKS)."""
    body = json_body(delivery.payload)
    headers = {"Content-Type": "application/json", "X-Signoff-Event": delivery.kind}
    secret = delivery.credentials.get("secret", "")
    if delivery.subscription_id:
        secret = delivery.subscription.secret
    if secret:
        headers["X-Signoff-Signature"] = sign(body, secret)
    return OutboundRequest(url=delivery.url, body=body, headers=headers)


def _chat(delivery: Delivery, session: requests.Session) -> OutboundRequest:
    """Slack and Teams incoming webhooks take the message document the payload already holds."""
    return OutboundRequest(
        url=delivery.url,
        body=json_body(delivery.payload),
        headers={"Content-Type": "application/json"},
    )


register_channel("webhook", _webhook)
register_channel("slack", _chat)
register_channel("teams", _chat)

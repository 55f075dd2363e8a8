"""Outbound events: what other systems (monitoring, chat, SIEM) hear from Signoff.

An event is a row written in the transaction that causes it (an outbox); a Celery task POSTs it
to every configured endpoint, signed, with retries, so a receiver outage loses nothing.
"""

from __future__ import annotations

from governance.notifications.models import OutboundEvent


def publish_event(*, kind: str, subject: str, payload: dict) -> OutboundEvent:
    """Queue an event for delivery once the surrounding transaction commits."""
    return OutboundEvent.objects.create(kind=kind, subject=subject, payload=payload)

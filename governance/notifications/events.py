"""Outbound events: what other systems (monitoring, chat, SIEM, a team's tools) hear.

`publish_event` writes the event and one outbox Delivery per receiver, in the transaction that
causes it: each URL of SIGNOFF_EVENT_WEBHOOKS (signed with SIGNOFF_EVENT_WEBHOOK_SECRET) and
each active subscription of a team owning the event's service that asked for this kind (signed
with its own secret, or formatted for Slack or Microsoft Teams). Receivers fail and retry
independently, so one endpoint's outage never makes another hear an event twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from governance.notifications import chat, outbox
from governance.notifications.models import OutboundEvent, Subscription

# The kinds a team may subscribe to, with what a person reads in the form.
SUBSCRIBABLE = {
    "release.requested": "Approval requested",
    "release.decided": "Approved, rejected, withdrawn or expired",
    "release.blocked": "Blocked by a freeze or an incident",
    "release.unapproved_deployment": "Unapproved deployment",
    "release.escalated": "Stage escalated",
    "release.verification_failed": "Post-deploy verification failed (rollback)",
}


def publish_event(
    *, kind: str, subject: str, payload: dict, service_id: int | None = None
) -> OutboundEvent:
    """Record the event and queue one delivery per receiver; all sent after commit.

    `payload` should carry what a person acting on it needs (`summary`, `url`); subscriptions
    hear it only when `service_id` is given and their team owns that service.
    """
    event = OutboundEvent.objects.create(kind=kind, subject=subject, payload=payload)
    document = event_document(event)
    for url in settings.SIGNOFF_EVENT_WEBHOOKS:
        outbox.enqueue(
            channel="webhook",
            kind=kind,
            subject=subject,
            url=url,
            payload=document,
            credentials={"secret": settings.SIGNOFF_EVENT_WEBHOOK_SECRET},
            event=event,
        )
    for subscription in _subscribers(kind, service_id):
        outbox.enqueue(
            channel=subscription.channel,
            kind=kind,
            subject=subject,
            url=subscription.url,
            payload=chat.message(subscription.channel, document),
            event=event,
            subscription=subscription,
        )
    return event


def event_document(event: OutboundEvent) -> dict:
    """The JSON document a webhook receiver gets for `event`."""
    return {
        "id": event.pk,
        "kind": event.kind,
        "subject": event.subject,
        "created_at": event.created_at.isoformat(),
        "payload": event.payload,
    }


def _subscribers(kind: str, service_id: int | None) -> list[Subscription]:
    if service_id is None:
        return []
    # Teams are below services in governance's layers: match them through the relations.
    teams = Q(team__services=service_id) | Q(team__co_owned_services=service_id)
    return [
        subscription
        for subscription in Subscription.objects.filter(teams, active=True).distinct()
        if kind in subscription.events
    ]

"""Outbound events: what other systems (monitoring, chat, SIEM, a team's tools) hear.

`publish_event` writes the event and one outbox Delivery per receiver, in the transaction that
causes it: each URL of SIGNOFF_EVENT_WEBHOOKS (signed with SIGNOFF_EVENT_WEBHOOK_SECRET) and
each active subscription of a team owning the event's service that asked for this kind (signed
with its own secret, or formatted for Slack or Microsoft Teams). Receivers fail and retry
independently, so one endpoint's outage never makes another hear an event twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from governance.notifications import chat, outbox
from governance.notifications.models import Delivery, OutboundEvent, Subscription

# The kinds a team may subscribe to, with what a person reads in the form.
SUBSCRIBABLE = {
    "release.requested": "Approval requested",
    "release.decided": "Approved, rejected, withdrawn or expired",
    "release.blocked": "Blocked by a freeze or an incident",
    "release.unapproved_deployment": "Unapproved deployment",
    "release.escalated": "Stage escalated",
    "release.verification_failed": "Post-deploy verification failed (rollback)",
}


@dataclass(frozen=True)
class EventSpec:
    """One event to publish: see `publish_event`."""

    kind: str
    subject: str
    payload: dict
    service_id: int | None = None


def publish_event(
    *, kind: str, subject: str, payload: dict, service_id: int | None = None
) -> OutboundEvent:
    """Record the event and queue one delivery per receiver; all sent after commit.

    `payload` should carry what a person acting on it needs (`summary`, `url`); subscriptions
    hear it only when `service_id` is given and their team owns that service.
    """
    return publish_events([EventSpec(kind, subject, payload, service_id)])[0]


def publish_events(specs: list[EventSpec]) -> list[OutboundEvent]:
    """Publish many events at once (a sweep's): a constant number of queries however many."""
    events = OutboundEvent.objects.bulk_create(
        [OutboundEvent(kind=s.kind, subject=s.subject, payload=s.payload) for s in specs],
        batch_size=1000,
    )
    subscribers = _subscribers({s.service_id for s in specs if s.service_id is not None})
    deliveries = []
    for spec, event in zip(specs, events, strict=True):
        document = event_document(event)
        deliveries += [
            Delivery(
                channel="webhook",
                kind=spec.kind,
                subject=spec.subject,
                url=url,
                payload=document,
                credentials={"secret": settings.SIGNOFF_EVENT_WEBHOOK_SECRET},
                event=event,
            )
            for url in settings.SIGNOFF_EVENT_WEBHOOKS
        ]
        deliveries += [
            Delivery(
                channel=subscription.channel,
                kind=spec.kind,
                subject=spec.subject,
                url=subscription.url,
                payload=chat.message(subscription.channel, document),
                event=event,
                subscription=subscription,
            )
            for subscription in subscribers.get(spec.service_id, [])
            if spec.kind in subscription.events
        ]
    outbox.enqueue_many(deliveries)
    return events


def event_document(event: OutboundEvent) -> dict:
    """The JSON document a webhook receiver gets for `event`."""
    return {
        "id": event.pk,
        "kind": event.kind,
        "subject": event.subject,
        "created_at": event.created_at.isoformat(),
        "payload": event.payload,
    }


def _subscribers(service_ids: set[int]) -> dict[int, list[Subscription]]:
    """Active subscriptions by the service they hear about: those of teams owning or
    co-owning it (teams sit below services in governance's layers: matched through the
    relations)."""
    if not service_ids:
        return {}
    active = Subscription.objects.filter(active=True)
    pairs = {
        *active.filter(team__services__in=service_ids).values_list("pk", "team__services"),
        *active.filter(team__co_owned_services__in=service_ids).values_list(
            "pk", "team__co_owned_services"
        ),
    }
    loaded = active.in_bulk({pk for pk, _ in pairs})
    found: dict[int, list[Subscription]] = {}
    for pk, service_id in sorted(pairs):
        found.setdefault(service_id, []).append(loaded[pk])
    return found

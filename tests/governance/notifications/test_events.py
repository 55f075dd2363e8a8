"""Outbound events: one delivery per receiver, to the organisation's event webhooks and to the
subscriptions of the teams owning the service, formatted for webhooks, Slack and Teams."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import services
from changes.freezes.services import FreezeInput, create_freeze
from governance.models import Delivery, OutboundEvent, Subscription
from governance.notifications.events import EventSpec, publish_event, publish_events
from governance.notifications.outbox import deliver_due
from tests import factories
from tests.stubs import Receiver

pytestmark = pytest.mark.django_db
SECRET = "shared-webhook-secret"


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = True  # the stub listens on 127.0.0.1
    stub = Receiver().start()
    yield stub
    stub.stop()


def subscription(team, url: str, channel: str = "webhook", **overrides) -> Subscription:
    values = {
        "team": team,
        "name": f"{channel} hook",
        "channel": channel,
        "url": url,
        "secret": "team-secret" if channel == "webhook" else "",
        "events": ["release.requested", "release.decided"],
        "created_by": factories.UserFactory(username="owner"),
    }
    return Subscription.objects.create(**{**values, **overrides})


def an_event(service_id: int | None = None, kind: str = "release.requested") -> OutboundEvent:
    return publish_event(
        kind=kind,
        subject="release:12",
        service_id=service_id,
        payload={
            "summary": "Approval requested: payments-api 2.14.0 → production",
            "service": "payments-api",
            "version": "2.14.0",
            "environment": "production",
            "change": "CHG0012345",
            "reasons": ["Waiting for Service approval"],
            "url": "/approvals/releases/12/",
        },
    )


def test_each_event_webhook_gets_the_event_document_signed_with_the_event_secret(
    receiver, settings
):
    settings.SIGNOFF_EVENT_WEBHOOKS = [receiver.url]
    settings.SIGNOFF_EVENT_WEBHOOK_SECRET = SECRET
    event = an_event()

    assert deliver_due() == 1

    [request] = receiver.received
    assert json.loads(request.body) == {
        "id": event.pk,
        "kind": "release.requested",
        "subject": "release:12",
        "created_at": event.created_at.isoformat(),
        "payload": event.payload,
    }
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signoff-Signature"] == f"sha256={expected}"


def test_the_owning_teams_subscriptions_for_that_kind_hear_it_and_nobody_else(
    receiver, team, service, settings
):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    co_owner, stranger = factories.TeamFactory(slug="sre"), factories.TeamFactory(slug="web")
    service.co_owning_teams.add(co_owner)
    wanted = [subscription(team, receiver.url), subscription(co_owner, receiver.url)]
    subscription(stranger, receiver.url)
    subscription(team, receiver.url, events=["release.escalated"])
    subscription(team, receiver.url, active=False)

    event = an_event(service.pk)

    deliveries = Delivery.objects.filter(event=event)
    assert sorted(d.subscription_id for d in deliveries) == sorted(s.pk for s in wanted)
    assert deliver_due() == 2
    signatures = {r.headers["X-Signoff-Signature"] for r in receiver.received}
    expected = hmac.new(b"team-secret", receiver.received[0].body, hashlib.sha256).hexdigest()
    assert signatures == {f"sha256={expected}"}


def test_an_event_about_no_service_reaches_no_subscription(receiver, team, settings):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    subscription(team, receiver.url)
    an_event(service_id=None)
    assert Delivery.objects.count() == 0


def test_slack_gets_a_block_kit_message_with_the_facts_and_a_button_to_the_release(
    receiver, team, service, settings
):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    settings.SITE_URL = "https://signoff.example.com"
    subscription(team, receiver.url, channel="slack")
    an_event(service.pk)
    deliver_due()

    message = json.loads(receiver.received[0].body)
    assert message["text"] == "Approval requested: payments-api 2.14.0 → production"
    fields = [field["text"] for field in message["blocks"][1]["fields"]]
    assert fields == [
        "*Service*\npayments-api",
        "*Version*\n2.14.0",
        "*Environment*\nproduction",
        "*Change*\nCHG0012345",
    ]
    assert message["blocks"][2]["text"]["text"] == "• Waiting for Service approval"
    button = message["blocks"][3]["elements"][0]
    assert button["url"] == "https://signoff.example.com/approvals/releases/12/"


def test_teams_gets_an_adaptive_card_with_an_open_action(receiver, team, service, settings):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    settings.SITE_URL = "https://signoff.example.com"
    subscription(team, receiver.url, channel="teams")
    an_event(service.pk)
    deliver_due()

    message = json.loads(receiver.received[0].body)
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["body"][0]["text"] == "Approval requested: payments-api 2.14.0 → production"
    assert {"title": "Service", "value": "payments-api"} in card["body"][1]["facts"]
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open in Signoff",
            "url": "https://signoff.example.com/approvals/releases/12/",
        }
    ]


def test_a_subscription_that_now_resolves_to_a_private_address_is_not_called(
    receiver, team, service, settings
):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    subscribed = subscription(team, receiver.url)
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = False
    an_event(service.pk)

    assert deliver_due() == 0
    assert receiver.received == []
    delivery = Delivery.objects.get(subscription=subscribed)
    assert delivery.last_error == "not sent: 127.0.0.1 resolves to a private address (127.0.0.1)"


def test_a_release_requested_and_decided_tells_the_teams_subscription_with_a_link(
    receiver, team, service, production, policy, requester, approver, second_approver, settings
):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    subscription(team, receiver.url, events=["release.requested", "release.decided"])
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=requester
    )
    services.withdraw_request(release=release, actor=requester, reason="Wrong build.")

    assert deliver_due() == 2
    requested, decided = (json.loads(r.body) for r in receiver.received)
    assert requested["kind"] == "release.requested"
    assert requested["payload"]["summary"] == (
        f"Approval requested: {release} ({release.change.ref}) by dave."
    )
    assert requested["payload"]["url"] == f"/approvals/releases/{release.pk}/"
    assert requested["payload"]["digest"] == release.digest
    assert decided["kind"] == "release.decided"
    assert decided["payload"]["status"] == "withdrawn"
    assert decided["payload"]["decided_by"] == "dave"


def test_a_gate_held_by_a_freeze_tells_the_team_once_however_often_the_pipeline_asks(
    receiver, client, team, service, production, policy, requester, administrator, settings
):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    subscription(team, receiver.url, events=["release.blocked"])
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=requester
    )
    now = timezone.now().replace(microsecond=0, tzinfo=None)
    create_freeze(
        data=FreezeInput(
            name="Quarter close",
            kind="hard",
            time_zone="UTC",
            local_start=now - timedelta(hours=1),
            local_end=now + timedelta(hours=2),
            environments=[production],
            reason="Quarter close",
        ),
        actor=administrator,
    )
    api = factories.ApiClient(client, requester)

    answers = [api.get(f"/api/v1/releases/{release.pk}/gate").json() for _ in range(3)]

    assert {answer["status"] for answer in answers} == {"blocked"}
    [event] = OutboundEvent.objects.filter(kind="release.blocked")
    assert event.subject == f"release:{release.pk}"
    assert any("Quarter close" in reason for reason in event.payload["reasons"])
    assert event.payload["summary"].startswith(f"Blocked at the gate: {release}")
    assert deliver_due() == 1
    assert json.loads(receiver.received[0].body)["kind"] == "release.blocked"


def test_a_gate_that_is_merely_pending_tells_nobody(
    receiver, client, team, service, production, policy, requester, settings
):
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    subscription(team, receiver.url, events=["release.blocked"])
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=requester
    )
    answer = factories.ApiClient(client, requester).get(f"/api/v1/releases/{release.pk}/gate")
    assert answer.json()["status"] == "pending"
    assert not OutboundEvent.objects.filter(kind="release.blocked").exists()


def test_a_sweeps_events_cost_the_same_queries_for_one_and_for_twenty(
    receiver, team, service, low_tier_service, settings
):
    settings.SIGNOFF_EVENT_WEBHOOKS = [receiver.url]
    subscription(team, receiver.url, events=["release.escalated"])

    def specs(n: int) -> list[EventSpec]:
        return [
            EventSpec("release.escalated", f"release:{i}", {"summary": "late"}, s.pk)
            for i in range(n)
            for s in (service, low_tier_service)
        ]

    with CaptureQueriesContext(connection) as one:
        publish_events(specs(1))
    with CaptureQueriesContext(connection) as many:
        publish_events(specs(10))

    # (SQLite splits inserts of many more rows by its variable limit: batched, not per row.)
    assert len(one) == len(many)
    # Each event: the organisation's webhook and the team's subscription.
    assert Delivery.objects.filter(kind="release.escalated").count() == 2 * (2 + 20)

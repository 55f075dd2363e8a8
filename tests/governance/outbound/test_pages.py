"""Subscriptions and the outbox pages: who may see and change what, and nothing else."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.ledger.models import LedgerEntry
from governance.models import Delivery, Subscription
from governance.notifications.outbox import enqueue
from tests import factories

pytestmark = pytest.mark.django_db
SUBSCRIPTIONS = reverse("governance:subscription_list")
OUTBOX = reverse("governance:outbox_list")


@pytest.fixture(autouse=True)
def _public_receivers(settings):
    # Receivers below are never called; their names must not need DNS in a sandbox either.
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = True


@pytest.fixture
def member(team):
    person = factories.UserFactory(username="paula")
    team.members.add(person)
    return person


def form(team, **overrides) -> dict:
    return {
        "team": team.pk,
        "name": "#payments-releases",
        "channel": "slack",
        "url": "https://hooks.slack.example/services/T000/B000/XXXX",
        "events": ["release.requested", "release.decided"],
        **overrides,
    }


def a_subscription(team, **overrides) -> Subscription:
    values = {
        "team": team,
        "name": "hook",
        "channel": "webhook",
        "url": "https://hooks.example.com/signoff",
        "events": ["release.decided"],
        "created_by": factories.UserFactory(username="someone"),
    }
    return Subscription.objects.create(**{**values, **overrides})


def test_anonymous_people_are_sent_to_sign_in(client, team):
    for url in (SUBSCRIPTIONS, OUTBOX):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url
    response = client.post(SUBSCRIPTIONS, form(team))
    assert response.status_code == 302
    assert Subscription.objects.count() == 0


def test_a_team_member_subscribes_their_team_and_it_is_ledgered_by_host_only(client, team, member):
    client.force_login(member)
    response = client.post(SUBSCRIPTIONS, form(team))

    assert response.status_code == 302
    subscription = Subscription.objects.get()
    assert (subscription.team, subscription.channel, subscription.created_by) == (
        team,
        "slack",
        member,
    )
    entry = LedgerEntry.objects.get(kind="subscription.created")
    assert entry.payload["host"] == "hooks.slack.example"
    assert "XXXX" not in str(entry.payload)  # the webhook URL is its own secret
    page = client.get(SUBSCRIPTIONS).content.decode()
    assert "#payments-releases" in page and "XXXX" not in page


def test_someone_outside_the_team_cannot_subscribe_it_and_nothing_is_written(
    client, team, outsider
):
    client.force_login(outsider)
    before = LedgerEntry.objects.count()
    response = client.post(SUBSCRIPTIONS, form(team))
    assert response.status_code == 400
    assert Subscription.objects.count() == 0 and LedgerEntry.objects.count() == before


def test_bad_input_is_refused_with_a_form_error(client, team, member, settings):
    client.force_login(member)
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = False
    response = client.post(SUBSCRIPTIONS, form(team, url="http://127.0.0.1:8080/hook"))
    assert response.status_code == 400
    assert "resolves to a private address" in response.content.decode()
    response = client.post(SUBSCRIPTIONS, form(team, events=["release.everything"]))
    assert response.status_code == 400
    assert Subscription.objects.count() == 0


def test_members_see_and_remove_only_their_teams_subscriptions(client, team, member):
    ours = a_subscription(team)
    theirs = a_subscription(factories.TeamFactory(slug="web"), name="web hook")
    client.force_login(member)

    page = client.get(SUBSCRIPTIONS).content.decode()
    assert "hook" in page and "web hook" not in page
    response = client.post(reverse("governance:subscription_remove", args=[theirs.pk]))
    assert response.status_code == 404
    assert Subscription.objects.filter(pk=theirs.pk).exists()

    client.post(reverse("governance:subscription_remove", args=[ours.pk]))
    assert not Subscription.objects.filter(pk=ours.pk).exists()
    assert LedgerEntry.objects.filter(kind="subscription.removed").count() == 1


def test_a_test_message_is_queued_for_the_subscription(client, team, member):
    subscription = a_subscription(team, channel="teams")
    client.force_login(member)
    client.post(reverse("governance:subscription_test", args=[subscription.pk]))
    delivery = Delivery.objects.get()
    assert (delivery.kind, delivery.subscription, delivery.channel) == (
        "subscription.test",
        subscription,
        "teams",
    )


def test_administrators_see_every_team_and_the_outbox(client, team, administrator):
    a_subscription(factories.TeamFactory(slug="web"), name="web hook")
    client.force_login(administrator)
    assert "web hook" in client.get(SUBSCRIPTIONS).content.decode()
    assert client.get(OUTBOX).status_code == 200


def test_the_outbox_is_for_administrators_only(client, member, approver):
    for person in (member, approver):
        client.force_login(person)
        assert client.get(OUTBOX).status_code == 403


def test_the_outbox_lists_deliveries_by_host_with_their_errors_and_filters_by_status(
    client, administrator
):
    given_up = enqueue(
        channel="slack",
        kind="release.decided",
        url="https://hooks.slack.example/services/T0/B0/SECRET",
        payload={},
    )
    Delivery.objects.filter(pk=given_up.pk).update(
        status="failed", attempts=10, last_error="Gave up after 10 attempts. answered 500"
    )
    enqueue(channel="webhook", kind="release.requested", url="https://a.example/", payload={})
    client.force_login(administrator)

    page = client.get(OUTBOX, {"status": "failed"}).content.decode()
    assert "Gave up after 10 attempts." in page
    assert "hooks.slack.example" in page and "SECRET" not in page
    assert "release.requested" not in page


def test_only_administrators_send_a_delivery_again(client, administrator, member):
    delivery = enqueue(channel="webhook", kind="release.decided", url="https://a/", payload={})
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=10)
    url = reverse("governance:outbox_redeliver", args=[delivery.pk])

    client.force_login(member)
    assert client.post(url).status_code == 403
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 10)

    client.force_login(administrator)
    assert client.post(url, {"reason": "Receiver fixed"}).status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert LedgerEntry.objects.get(kind="outbox.redelivered").actor == "ada"


def test_the_outbox_costs_the_same_queries_for_one_row_and_for_fifty(client, administrator):
    team = factories.TeamFactory(slug="ops")

    def add(n: int) -> None:
        for _ in range(n):
            enqueue(
                channel="webhook",
                kind="release.decided",
                url="https://a.example/",
                payload={},
                subscription=a_subscription(team),
            )

    client.force_login(administrator)
    add(1)
    with CaptureQueriesContext(connection) as one:
        client.get(OUTBOX)
    add(49)
    with CaptureQueriesContext(connection) as fifty:
        client.get(OUTBOX)
    assert len(one) == len(fifty)

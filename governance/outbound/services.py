"""Teams' subscriptions and the outbox, administered: who may subscribe what, and sending a
delivery again. Every change is ledgered; a receiver's URL is ledgered by host only, since chat
webhook URLs are themselves secrets."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Q, QuerySet

from governance.authority.services import is_administrator
from governance.exceptions import GovernanceError, PermissionDenied
from governance.ledger import services as ledger
from governance.notifications import chat, outbox
from governance.notifications.events import SUBSCRIBABLE
from governance.notifications.models import Delivery, Subscription
from governance.people.models import Team, User


def subscribable_teams(user: User) -> QuerySet[Team]:
    """The teams `user` may manage subscriptions for: their own, or all for administrators."""
    if is_administrator(user):
        return Team.objects.all()
    return Team.objects.filter(members=user) if user.is_active else Team.objects.none()


def visible_subscriptions(user: User) -> QuerySet[Subscription]:
    return Subscription.objects.filter(
        Q(team__in=subscribable_teams(user).values("pk"))
    ).select_related("team", "created_by")


def subscribe(
    *,
    team: Team,
    actor: User,
    name: str,
    channel: str,
    url: str,
    events: list[str],
    secret: str = "",
) -> Subscription:
    """Subscribe `team`'s receiver to `events` of its services."""
    _require_team(actor, team)
    refused = outbox.receiver_allowed(url)
    if refused:
        raise GovernanceError(f"That URL cannot be used: {refused}.", fields={"url": [refused]})
    unknown = sorted(set(events) - set(SUBSCRIBABLE))
    if not events or unknown:
        message = f"Unknown event kinds: {', '.join(unknown)}." if unknown else "Pick events."
        raise GovernanceError(message, fields={"events": [message]})
    with transaction.atomic():
        subscription = Subscription.objects.create(
            team=team,
            name=name,
            channel=channel,
            url=url,
            secret=secret,
            events=sorted(events),
            created_by=actor,
        )
        _ledger("subscription.created", subscription, actor)
    return subscription


def remove_subscription(*, subscription: Subscription, actor: User) -> None:
    """Stop a subscription; its past deliveries stay on the outbox page."""
    _require_team(actor, subscription.team)
    with transaction.atomic():
        _ledger("subscription.removed", subscription, actor)
        subscription.delete()


def send_test_message(*, subscription: Subscription, actor: User) -> Delivery:
    """Queue a harmless message to the receiver, so a team sees its setup work."""
    _require_team(actor, subscription.team)
    document = {
        "id": None,
        "kind": "subscription.test",
        "subject": f"subscription:{subscription.pk}",
        "created_at": None,
        "payload": {
            "summary": f"Signoff test message for {subscription.team.name}: "
            f"'{subscription.name}' is set up.",
            "url": "/governance/subscriptions/",
        },
    }
    with transaction.atomic():
        return outbox.enqueue(
            channel=subscription.channel,
            kind="subscription.test",
            subject=f"subscription:{subscription.pk}",
            url=subscription.url,
            payload=chat.message(subscription.channel, document),
            subscription=subscription,
        )


def redeliver(*, delivery: Delivery, actor: User, reason: str = "") -> Delivery:
    """Administrators send a delivery again (ledgered by the outbox)."""
    if not is_administrator(actor):
        raise PermissionDenied("Only administrators can send deliveries again.")
    return outbox.redeliver(delivery=delivery, actor=actor, reason=reason)


def _require_team(actor: User, team: Team) -> None:
    if not subscribable_teams(actor).filter(pk=team.pk).exists():
        raise PermissionDenied(
            f"Only members of {team.name} and administrators manage its subscriptions."
        )


def _ledger(kind: str, subscription: Subscription, actor: User) -> None:
    ledger.append(
        kind=kind,
        subject=f"team:{subscription.team.slug}",
        actor=actor.username,
        payload={
            "subscription": subscription.pk,
            "name": subscription.name,
            "channel": subscription.channel,
            "host": urlsplit(subscription.url).hostname,
            "events": subscription.events,
            "signed": bool(subscription.secret),
        },
    )

"""Raising and acknowledging anomaly alerts.

Raising stores each new finding once (its fingerprint is unique), writes `anomaly.raised` to
the ledger and tells the security contacts, all in one transaction per alert: an alert is never
stored without its ledger entry and its messages, nor told twice.

Security contacts are the people holding the security approver role on everything (an in-app
notification, delivered by e-mail) and each URL of SIGNOFF_SECURITY_WEBHOOKS (a Slack or
Microsoft Teams incoming webhook, recognised by its host, or a signed JSON webhook), each
through the outbox with its own Delivery row.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from governance.authority.models import Role, RoleAssignment
from governance.exceptions import GovernanceError, PermissionDenied
from governance.ledger import services as ledger
from governance.models import Delivery, User
from governance.notifications import chat, outbox
from governance.notifications.services import notify
from reporting.anomalies.detectors import Finding, Thresholds, Window, detect
from reporting.anomalies.models import AnomalyAlert

# Incoming-webhook hosts of the chat tools (a Teams URL has the tenant's name in front).
CHAT_HOSTS = {"hooks.slack.com": "slack", "webhook.office.com": "teams"}


class InvalidAcknowledgement(GovernanceError):
    code = "invalid_acknowledgement"


def detect_anomalies(*, now: datetime | None = None) -> list[AnomalyAlert]:
    """Run every detector over the window ending `now` and raise what is new."""
    thresholds = Thresholds.from_settings()
    window = Window.ending(now or timezone.now(), thresholds)
    return raise_alerts(detect(window, thresholds))


def raise_alerts(findings: list[Finding]) -> list[AnomalyAlert]:
    """Store the findings not raised before; returns the alerts raised now."""
    known = set(
        AnomalyAlert.objects.filter(fingerprint__in=[f.fingerprint for f in findings]).values_list(
            "fingerprint", flat=True
        )
    )
    raised = []
    for finding in findings:
        if finding.fingerprint in known:
            continue
        known.add(finding.fingerprint)
        alert = _raise(finding)
        if alert is not None:
            raised.append(alert)
    return raised


def _raise(finding: Finding) -> AnomalyAlert | None:
    """Store one alert with its ledger entry and messages; None if a concurrent run won."""
    try:
        with transaction.atomic(), ledger.deferred():
            alert = AnomalyAlert.objects.create(
                kind=finding.kind,
                fingerprint=finding.fingerprint,
                person=finding.person,
                counterpart=finding.counterpart,
                team=finding.team,
                window_start=finding.window_start,
                window_end=finding.window_end,
                summary=finding.summary[:300],
                evidence=finding.evidence,
                severity=finding.severity,
            )
            ledger.append(
                kind="anomaly.raised",
                subject=f"anomaly:{alert.pk}",
                actor="signoff",
                payload={
                    "kind": alert.kind,
                    "fingerprint": alert.fingerprint,
                    "severity": alert.severity,
                    "summary": alert.summary,
                    "decisions": [d["decision_id"] for d in alert.evidence.get("decisions", [])],
                },
            )
            tell_security_contacts(alert)
    except IntegrityError:
        # Another run stored the same fingerprint first: it is raised once, by that run.
        if AnomalyAlert.objects.filter(fingerprint=finding.fingerprint).exists():
            return None
        raise
    return alert


def _organisation_grants(role: str):
    """Grants of `role` on everything (no service, no team scope), in force now."""
    return RoleAssignment.objects.filter(
        role=role, service__isnull=True, team__isnull=True
    ).exclude(expires_at__lte=timezone.now())


def security_contacts() -> list[User]:
    """Active people holding the security approver role on everything, in force now."""
    grants = _organisation_grants(Role.SECURITY_APPROVER)
    return list(
        User.objects.filter(pk__in=grants.values("user_id"), is_active=True).order_by("username")
    )


def organisation_roles(user: User) -> set[str]:
    """The roles `user` holds on everything now, in one query."""
    if not user.is_active:
        return set()
    grants = RoleAssignment.objects.filter(user=user, service__isnull=True, team__isnull=True)
    return set(grants.exclude(expires_at__lte=timezone.now()).values_list("role", flat=True))


def may_acknowledge(user: User, roles: set[str] | None = None) -> bool:
    """Security approvers of the whole organisation and administrators; never an auditor,
    who reads everything and decides nothing."""
    roles = organisation_roles(user) if roles is None else roles
    if not user.is_active or Role.AUDITOR in roles:
        return False
    return user.is_superuser or bool({Role.ADMINISTRATOR, Role.SECURITY_APPROVER} & roles)


def may_view(user: User, roles: set[str] | None = None) -> bool:
    """Those who may acknowledge, and auditors of the whole organisation (read-only)."""
    roles = organisation_roles(user) if roles is None else roles
    return may_acknowledge(user, roles) or (user.is_active and Role.AUDITOR in roles)


def alert_document(alert: AnomalyAlert) -> dict:
    """What a webhook receiver gets: the event document shape the outbox already sends."""
    return {
        "id": alert.pk,
        "kind": "anomaly.raised",
        "subject": f"anomaly:{alert.pk}",
        "created_at": alert.raised_at.isoformat(),
        "payload": {
            "summary": f"Anomaly ({alert.get_kind_display()}): {alert.summary}",
            "url": reverse("reporting:anomaly_list") + f"#anomaly-{alert.pk}",
            "kind": alert.kind,
            "severity": alert.severity,
            "status": alert.get_status_display(),
            "evidence": alert.evidence,
        },
    }


def tell_security_contacts(alert: AnomalyAlert) -> None:
    """One notification per security approver and one Delivery per configured webhook,
    written in the caller's transaction and sent after it commits."""
    # Nobody is told about themselves through this path: they could hide it.
    people = [p for p in security_contacts() if not _about(alert, p)]
    document = alert_document(alert)
    notify(
        people=people,
        subject=f"Anomaly: {alert.get_kind_display()} ({alert.subject_label})",
        body=alert.summary,
        url=document["payload"]["url"],
        reason="you are a security approver",
    )
    outbox.enqueue_many(
        [
            Delivery(
                channel=channel,
                kind="anomaly.raised",
                subject=f"anomaly:{alert.pk}",
                url=url,
                payload=chat.message(channel, document),
                credentials={"secret": settings.SIGNOFF_EVENT_WEBHOOK_SECRET}
                if channel == "webhook"
                else {},
            )
            for url in getattr(settings, "SIGNOFF_SECURITY_WEBHOOKS", [])
            for channel in [channel_for(url)]
        ]
    )


def channel_for(url: str) -> str:
    """slack or teams for those tools' incoming webhooks, else a signed JSON webhook."""
    host = urlsplit(url).hostname or ""
    for suffix, channel in CHAT_HOSTS.items():
        if host == suffix or host.endswith(f".{suffix}"):
            return channel
    return "webhook"


def _about(alert: AnomalyAlert, person: User) -> bool:
    return person.pk in (alert.person_id, alert.counterpart_id)


def team_ids(user: User) -> set[int]:
    """The teams `user` belongs to: an alert about one of them is about them too."""
    return set(user.teams.values_list("pk", flat=True))


def acknowledge_alert(*, alert: AnomalyAlert, actor: User, note: str) -> AnomalyAlert:
    """Mark an open alert as seen and dealt with, with a note; ledgered.

    Nobody acknowledges an alert about themselves (or about their own team): segregation of
    duties, as nobody approves their own release.
    """
    note = (note or "").strip()
    if not note:
        raise InvalidAcknowledgement(
            "A note is required to acknowledge an alert.", fields={"note": ["Required."]}
        )
    if not may_acknowledge(actor):
        raise PermissionDenied("Alerts are acknowledged by security approvers and administrators.")
    with transaction.atomic(), ledger.deferred():
        alert = AnomalyAlert.objects.select_for_update().get(pk=alert.pk)
        if alert.concerns(actor, team_ids(actor)):
            raise PermissionDenied(
                "This alert is about you (or your team): someone else must acknowledge it."
            )
        if alert.status != AnomalyAlert.Status.OPEN:
            raise InvalidAcknowledgement("This alert has already been acknowledged.")
        now = timezone.now()
        AnomalyAlert.objects.filter(pk=alert.pk).update(
            status=AnomalyAlert.Status.ACKNOWLEDGED,
            acknowledged_by=actor,
            acknowledged_at=now,
            note=note,
        )
        ledger.append(
            kind="anomaly.acknowledged",
            subject=f"anomaly:{alert.pk}",
            actor=actor.username,
            payload={"kind": alert.kind, "fingerprint": alert.fingerprint, "note": note},
        )
    alert.refresh_from_db()
    return alert

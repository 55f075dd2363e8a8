"""Raising tells the security contacts through the outbox; acknowledging needs a note, is
ledgered, and is never done by the person (or a member of the team) the alert is about."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from governance.exceptions import PermissionDenied
from governance.models import Delivery, LedgerEntry, Notification, Role, Team
from governance.notifications import outbox
from reporting.anomalies import services as anomaly_services
from reporting.anomalies.detectors import Finding, decision_evidence
from reporting.anomalies.models import AnomalyAlert
from reporting.anomalies.services import (
    InvalidAcknowledgement,
    acknowledge_alert,
    raise_alerts,
)
from reporting.anomalies.tasks import detect_anomalies_task
from tests import factories
from tests.reporting.anomalies.history import History, local, person
from tests.stubs import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def security_approver(db):
    user = factories.UserFactory(username="sam", first_name="Sam")
    factories.grant(user, Role.SECURITY_APPROVER)
    return user


@pytest.fixture
def subject(db):
    return person("alice")


def finding_about(user, *, kind: str = "off_hours", key: str = "1", team=None) -> Finding:
    """A finding with one real decision behind it, as a detector would return it."""
    approver = user or person("zed")
    history = History()
    history.add(approver, local(approver, timezone.now(), 3))
    [decision] = history.save()
    return Finding(
        kind=kind,
        fingerprint=f"{kind}:test:{key}",
        summary=f"{decision.approver.username} approved at 03:00.",
        severity="medium",
        window_start=timezone.now() - timedelta(days=90),
        window_end=timezone.now(),
        evidence={"decisions": [decision_evidence(decision)], "time_zone": "Europe/London"},
        person=user,
        team=team,
    )


def alert_about(user, **options) -> AnomalyAlert:
    [alert] = raise_alerts([finding_about(user, **options)])
    return alert


# --- Telling the security contacts ----------------------------------------------------------------


def test_each_security_approver_is_notified_once_and_nobody_else(
    subject, security_approver, approver, cab_member
):
    scoped = factories.UserFactory(username="sid")
    factories.grant(scoped, Role.SECURITY_APPROVER, factories.ServiceFactory(slug="one"))
    alert = alert_about(subject)
    [notification] = Notification.objects.all()
    assert notification.recipient == security_approver
    assert notification.subject == "Anomaly: Far outside usual hours (alice)"
    assert notification.url == f"/anomalies/#anomaly-{alert.pk}"


def test_a_security_approver_is_not_told_about_themselves(security_approver):
    alert_about(security_approver)
    assert not Notification.objects.exists()


def test_each_security_webhook_gets_one_signed_delivery_that_reaches_it(
    settings, subject, security_approver
):
    receiver = Receiver().start()
    try:
        settings.SIGNOFF_SECURITY_WEBHOOKS = [receiver.url]
        settings.SIGNOFF_EVENT_WEBHOOK_SECRET = "webhook-secret"
        alert = alert_about(subject)
        [delivery] = Delivery.objects.all()
        assert (delivery.channel, delivery.kind, delivery.subject) == (
            "webhook",
            "anomaly.raised",
            f"anomaly:{alert.pk}",
        )
        assert outbox.deliver_due() == 1
    finally:
        receiver.stop()
    [received] = receiver.received
    document = json.loads(received.body)
    assert document["kind"] == "anomaly.raised"
    assert document["payload"]["kind"] == "off_hours"
    assert document["payload"]["evidence"]["decisions"][0]["approver"] == "alice"
    assert received.headers["X-Signoff-Signature"] == outbox.sign(received.body, "webhook-secret")
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DELIVERED


def test_slack_and_teams_urls_get_chat_messages(settings, subject):
    settings.SIGNOFF_SECURITY_WEBHOOKS = [
        "https://hooks.slack.com/services/T0/B0/x",
        "https://acme.webhook.office.com/webhookb2/y",
    ]
    alert_about(subject)
    channels = dict(Delivery.objects.values_list("channel", "url"))
    assert set(channels) == {"slack", "teams"}
    slack = Delivery.objects.get(channel="slack")
    assert "Far outside usual hours" in slack.payload["blocks"][0]["text"]["text"]


def test_a_finding_raised_before_is_neither_stored_nor_told_again(subject, security_approver):
    finding = finding_about(subject)
    assert len(raise_alerts([finding])) == 1
    assert raise_alerts([finding]) == []
    assert AnomalyAlert.objects.count() == Notification.objects.count() == 1


# --- Acknowledging --------------------------------------------------------------------------------


def test_acknowledging_records_who_when_and_the_note_in_the_ledger(subject, security_approver):
    alert = alert_about(subject)
    acknowledge_alert(alert=alert, actor=security_approver, note="Alice was on call; confirmed.")
    alert.refresh_from_db()
    assert alert.status == AnomalyAlert.Status.ACKNOWLEDGED
    assert alert.acknowledged_by == security_approver
    assert alert.acknowledged_at is not None
    assert alert.note == "Alice was on call; confirmed."
    entry = LedgerEntry.objects.get(kind="anomaly.acknowledged")
    assert (entry.subject, entry.actor) == (f"anomaly:{alert.pk}", "sam")
    assert entry.payload["note"] == "Alice was on call; confirmed."


def unchanged(alert: AnomalyAlert) -> None:
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by, alert.note) == ("open", None, "")
    assert not LedgerEntry.objects.filter(kind="anomaly.acknowledged").exists()


def test_nobody_acknowledges_an_alert_about_themselves(security_approver):
    other = factories.UserFactory(username="sara")
    factories.grant(other, Role.SECURITY_APPROVER)
    alert = alert_about(security_approver)
    with pytest.raises(PermissionDenied, match="This alert is about you"):
        acknowledge_alert(alert=alert, actor=security_approver, note="Fine.")
    unchanged(alert)


def test_the_other_person_of_a_reciprocal_pair_cannot_acknowledge_it(security_approver):
    finding = finding_about(person("xavier"), kind="reciprocity")
    finding.counterpart = security_approver
    [alert] = raise_alerts([finding])
    with pytest.raises(PermissionDenied, match="This alert is about you"):
        acknowledge_alert(alert=alert, actor=security_approver, note="Fine.")
    unchanged(alert)


def test_a_member_cannot_acknowledge_an_alert_about_their_team(security_approver):
    team = Team.objects.create(slug="security", name="Security")
    team.members.add(security_approver)
    alert = alert_about(None, kind="volume_spike", team=team)
    with pytest.raises(PermissionDenied, match="your team"):
        acknowledge_alert(alert=alert, actor=security_approver, note="Fine.")
    unchanged(alert)


def test_a_note_is_required(subject, security_approver):
    alert = alert_about(subject)
    with pytest.raises(InvalidAcknowledgement, match="A note is required"):
        acknowledge_alert(alert=alert, actor=security_approver, note="   ")
    unchanged(alert)


def test_auditors_and_approvers_cannot_acknowledge(subject, auditor, approver):
    alert = alert_about(subject)
    for actor in (auditor, approver):
        with pytest.raises(PermissionDenied, match="security approvers and administrators"):
            acknowledge_alert(alert=alert, actor=actor, note="Fine.")
    unchanged(alert)


def test_an_alert_is_acknowledged_once(subject, security_approver, administrator):
    alert = alert_about(subject)
    acknowledge_alert(alert=alert, actor=security_approver, note="Checked.")
    with pytest.raises(InvalidAcknowledgement, match="already been acknowledged"):
        acknowledge_alert(alert=alert, actor=administrator, note="Me too.")
    alert.refresh_from_db()
    assert (alert.acknowledged_by, alert.note) == (security_approver, "Checked.")
    assert LedgerEntry.objects.filter(kind="anomaly.acknowledged").count() == 1


# --- Running on demand and from beat ------------------------------------------------------------


def test_the_command_and_the_task_run_the_detectors(subject):
    # "Now" is whenever the test runs: usual hours are made to exclude it.
    hour = (timezone.now().hour + 12) % 24
    subject.time_zone = "UTC"
    subject.save()
    history = History()
    now = timezone.now()
    for days in range(2, 27):  # enough for usual hours, too few to count as never rejecting
        history.add(subject, now.replace(hour=hour, minute=0) - timedelta(days=days))
    history.add(subject, now - timedelta(minutes=5))
    history.save()
    out = io.StringIO()
    call_command("detect_anomalies", stdout=out)
    assert "Far outside usual hours: alice approved" in out.getvalue()
    assert "1 new alert(s) raised." in out.getvalue()
    assert detect_anomalies_task() == 0


def test_a_finding_stored_by_a_concurrent_run_is_not_raised_twice(subject, security_approver):
    finding = finding_about(subject)
    raise_alerts([finding])
    # As a second run would meet it after its own check: the unique fingerprint refuses it.
    assert anomaly_services._raise(finding) is None
    assert AnomalyAlert.objects.count() == Notification.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="anomaly.raised").count() == 1

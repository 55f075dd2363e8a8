"""Notifications: who is told (people at work first, delegates for the absent), and delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest
from governance.authority.services import create_delegation
from governance.models import Notification
from governance.notifications.services import deliver_pending, route
from tests import factories

pytestmark = pytest.mark.django_db
WEDNESDAY_10_UTC = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def person(username: str, tz: str, start: int, end: int):
    return factories.UserFactory(
        username=username, time_zone=tz, working_hours_start=start, working_hours_end=end
    )


def test_people_in_working_hours_are_told_first():
    london = person("lon", "Europe/London", 9, 17)
    tokyo = person("tok", "Asia/Tokyo", 9, 17)  # 19:00 there
    chosen, reason = route([london, tokyo], WEDNESDAY_10_UTC)
    assert chosen == [london] and reason == "in working hours now"


def test_when_nobody_is_at_work_whoever_starts_soonest_is_told():
    new_york = person("nyc", "America/New_York", 9, 17)  # 05:00 there: starts in 4 hours
    sydney = person("syd", "Australia/Sydney", 9, 17)  # 21:00 there: starts in 12 hours
    chosen, reason = route([new_york, sydney], WEDNESDAY_10_UTC)
    assert chosen == [new_york] and "start work soonest" in reason


def test_opening_a_stage_queues_notifications_that_link_to_the_release(production_release):
    rows = Notification.objects.filter(subject__contains="payments-api")
    assert rows.exists()
    assert {n.recipient.username for n in rows} <= {"alice", "bob"}
    assert all(n.url == f"/approvals/releases/{production_release.pk}/" for n in rows)


def test_an_absent_approver_is_represented_by_their_delegate(
    org, service, production, pipeline_bot, approver, second_approver
):
    frank = factories.UserFactory(username="frank")
    now = timezone.now()
    create_delegation(
        delegator=approver,
        delegate=frank,
        service=None,
        reason="leave",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
        actor=approver,
    )
    Notification.objects.all().delete()
    services.request_approval(data=factories.release_input(service, production), actor=pipeline_bot)
    recipients = {n.recipient.username for n in Notification.objects.all()}
    assert recipients and "alice" not in recipients and recipients <= {"frank", "bob"}


def test_delivery_sends_mail_once_and_marks_it_delivered(production_release):
    queued = Notification.objects.filter(delivered_at__isnull=True).count()
    assert deliver_pending() == queued
    assert len(mail.outbox) == queued
    assert f"/approvals/releases/{production_release.pk}/" in mail.outbox[0].body
    assert deliver_pending() == 0


class FailingBackend(BaseEmailBackend):
    def send_messages(self, messages):
        raise ConnectionRefusedError("mail server down")


@override_settings(EMAIL_BACKEND="tests.governance.notifications.test_notifications.FailingBackend")
def test_a_mail_outage_keeps_notifications_queued(production_release):
    assert deliver_pending() == 0
    row = Notification.objects.first()
    assert (row.delivered_at, row.attempts) == (None, 1)
    assert "mail server down" in row.last_error


def outcome_notes(release) -> list[tuple[str, str]]:
    notes = Notification.objects.filter(url__endswith=f"/releases/{release.pk}/")
    return sorted(
        (n.recipient.username, n.subject.split(":")[0])
        for n in notes
        if n.subject.split(":")[0] in {"Approved", "Rejected", "Expired"}
    )


def test_the_requester_hears_when_the_release_is_approved(
    production_release, approver, second_approver, cab_member
):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)

    # ci-bot requested it for dave, who triggered the pipeline: dave is told, not the bot.
    assert outcome_notes(production_release) == [("dave", "Approved")]


def test_the_requester_hears_why_the_release_was_rejected(production_release, approver):
    factories.decide(production_release, approver, "reject", "Rollback plan missing.")

    assert outcome_notes(production_release) == [("dave", "Rejected")]
    note = Notification.objects.get(subject__startswith="Rejected")
    assert "Rollback plan missing." in note.body and "Alice" in note.body


def test_the_requester_hears_when_the_request_expired(production_release):
    ApprovalRequest.objects.filter(release=production_release).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    services.expire_requests()

    assert outcome_notes(production_release) == [("dave", "Expired")]

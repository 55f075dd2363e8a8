"""Getting a feed URL: the profile page shows it and replaces it (after confirmation), and
`manage.py issue_calendar_token USERNAME` prints it."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from governance.identity import feeds
from governance.models import CalendarFeedKey, LedgerEntry

PROFILE = "/governance/profile/"


def test_the_profile_offers_a_feed_url_until_one_is_created(client, approver):
    client.force_login(approver)

    page = client.get(PROFILE)

    assert b"Create my feed URL" in page.content
    assert page.context["calendar_feed_url"] == ""


def test_creating_the_feed_url_on_the_profile_page(client, approver):
    client.force_login(approver)

    response = client.post(PROFILE, {"action": "calendar_feed"})

    assert response.status_code == 302
    key = CalendarFeedKey.objects.get(user=approver)
    page = client.get(PROFILE)
    assert page.context["calendar_feed_url"] == feeds.feed_url(key)
    assert feeds.token_for(key).encode() in page.content
    assert LedgerEntry.objects.filter(kind="calendar_feed.issued").count() == 1


def test_replacing_needs_the_confirmation_tick(client, approver):
    key = feeds.issue_feed_key(user=approver, actor=approver)
    client.force_login(approver)
    ledger = LedgerEntry.objects.count()

    response = client.post(PROFILE, {"action": "calendar_feed"}, follow=True)

    assert b"Tick the box to confirm" in response.content
    assert CalendarFeedKey.objects.get(user=approver).nonce == key.nonce
    assert LedgerEntry.objects.count() == ledger


def test_replacing_with_confirmation_issues_a_new_url(client, approver):
    old = feeds.feed_url(feeds.issue_feed_key(user=approver, actor=approver))
    client.force_login(approver)

    client.post(PROFILE, {"action": "calendar_feed", "confirm": "replace"})

    new = client.get(PROFILE).context["calendar_feed_url"]
    assert new and new != old
    assert LedgerEntry.objects.filter(kind="calendar_feed.replaced").count() == 1


def test_the_replace_form_needs_a_csrf_token(approver):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(approver)

    response = strict.post(PROFILE, {"action": "calendar_feed"})

    assert response.status_code == 403
    assert not CalendarFeedKey.objects.exists()


def test_anonymous_visitors_cannot_create_a_feed(client, approver):
    response = client.post(PROFILE, {"action": "calendar_feed"})

    assert response.status_code == 302
    assert not CalendarFeedKey.objects.exists()


def test_the_command_prints_the_same_url_until_replaced(approver):
    def run(*args) -> str:
        out = io.StringIO()
        call_command("issue_calendar_token", "alice", *args, stdout=out)
        return out.getvalue().strip()

    first, again = run(), run()
    assert first == again == feeds.feed_url(feeds.feed_key(approver))

    replaced = run("--replace")

    assert replaced != first
    assert "/changes/calendar.ics?token=" in replaced


def test_the_command_refuses_an_unknown_person(db):
    with pytest.raises(CommandError, match="No active person with username 'nobody'"):
        call_command("issue_calendar_token", "nobody", stdout=io.StringIO())

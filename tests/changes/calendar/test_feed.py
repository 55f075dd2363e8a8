"""The iCalendar feed: who gets one (only the right token), what it holds, and that it is valid
RFC 5545, read back with the icalendar library."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from icalendar import Calendar

from approvals import services as approvals
from changes.calendar.feed import uid_host
from changes.freezes.services import end_freeze
from changes.models import ChangeRecord
from governance.identity import feeds
from governance.models import CalendarFeedKey, Delegation, LedgerEntry
from tests import factories


def soon(days: float, hour: int = 10) -> datetime:
    """An instant a few days from now (the feed shows three months back, a year ahead)."""
    base = timezone.now().astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return base + timedelta(days=days)


def uid(kind: str, pk: int) -> str:
    return f"{kind}-{pk}@{uid_host()}"


def parse(response) -> Calendar:
    assert response.status_code == 200
    return Calendar.from_ical(response.content)


def events(calendar: Calendar) -> dict[str, object]:
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


@pytest.fixture
def planned(make_change, service, other_service):
    """A change on payments-api planned in Berlin time, one on billing (not alice's)."""
    mine = make_change(
        [service],
        soon(3, 9),
        soon(3, 11),
        title="Rotate the payment provider's keys, which takes a while to describe fully",
        time_zone="Europe/Berlin",
        state=ChangeRecord.State.AUTHORISE,
    )
    theirs = make_change([other_service], soon(4), soon(4, 12), title="Billing schema")
    return mine, theirs


def test_feed_is_valid_rfc_5545_with_zones_folding_and_crlf(client, approver, planned, feed_url_of):
    mine, _ = planned

    response = client.get(feed_url_of(approver))

    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert "private" in response["Cache-Control"]
    body = response.content
    lines = body.split(b"\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")  # every line ends with CRLF
    assert all(len(line) <= 75 for line in lines)  # folded at 75 octets
    assert any(line.startswith(b" ") for line in lines)  # the long summary was folded
    calendar = parse(response)
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"] == "-//Signoff//Change schedule//EN"
    event = events(calendar)[uid("change", mine.pk)]
    assert event.decoded("DTSTART") == mine.planned_start
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTSTAMP").utcoffset() == timedelta(0)
    assert b"DTSTAMP:" in body and body.split(b"DTSTAMP:")[1][:16].endswith(b"Z")
    zones = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    assert "Europe/Berlin" in zones
    assert str(event["STATUS"]) == "TENTATIVE"
    assert "URL" not in event or str(event["URL"]).startswith(settings.SITE_URL)


def test_feed_holds_only_the_services_the_person_approves_or_requests_for(
    client, approver, planned, feed_url_of
):
    mine, theirs = planned

    uids = set(events(parse(client.get(feed_url_of(approver)))))

    assert uid("change", mine.pk) in uids
    assert uid("change", theirs.pk) not in uids


def test_uids_are_stable_across_refreshes(client, approver, planned, feed_url_of):
    url = feed_url_of(approver)

    first, second = events(parse(client.get(url))), events(parse(client.get(url)))

    assert set(first) == set(second) and first


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("new", "TENTATIVE"),
        ("assess", "TENTATIVE"),
        ("authorise", "TENTATIVE"),
        ("scheduled", "CONFIRMED"),
        ("implement", "CONFIRMED"),
        ("review", "CONFIRMED"),
        ("closed", "CONFIRMED"),
        ("cancelled", "CANCELLED"),
    ],
)
def test_a_changes_status_follows_its_state(
    client, approver, service, make_change, feed_url_of, state, status
):
    change = make_change([service], soon(2), soon(2, 12), state=state)

    event = events(parse(client.get(feed_url_of(approver))))[uid("change", change.pk)]

    assert str(event["STATUS"]) == status


def test_a_recurring_freeze_is_one_event_with_its_rule_and_skipped_dates(
    client, approver, service, make_freeze, feed_url_of
):
    start = soon(1, 17).astimezone(UTC).replace(tzinfo=None)
    skipped = start + timedelta(days=14)
    freeze = make_freeze(
        start,
        start + timedelta(hours=14),
        name="Weekly evening freeze",
        time_zone="America/New_York",
        recurrence="FREQ=WEEKLY;COUNT=10",
        exdates=[skipped],
        services=[service],
    )

    calendar = parse(client.get(feed_url_of(approver)))

    event = events(calendar)[uid("freeze", freeze.pk)]
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert event.decoded("DTSTART").replace(tzinfo=None) == start
    assert event["RRULE"]["FREQ"] == ["WEEKLY"] and event["RRULE"]["COUNT"] == [10]
    exdates = [d.dt.replace(tzinfo=None) for d in event["EXDATE"].dts]
    assert exdates == [skipped]
    assert "America/New_York" in {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    assert str(event["STATUS"]) == "CONFIRMED"
    assert "Hard freeze" in str(event["SUMMARY"])


def test_a_freezes_local_until_is_written_in_utc(
    client, approver, service, make_freeze, feed_url_of
):
    start = soon(1, 17).replace(tzinfo=None)
    until = (start + timedelta(days=30)).strftime("%Y%m%dT%H%M%S")
    freeze = make_freeze(
        start,
        start + timedelta(hours=2),
        time_zone="Europe/Berlin",
        recurrence=f"FREQ=WEEKLY;UNTIL={until}",
        services=[service],
    )

    body = client.get(feed_url_of(approver)).content.decode()
    event = events(Calendar.from_ical(body))[uid("freeze", freeze.pk)]

    assert event["RRULE"]["UNTIL"][0].tzinfo is not None
    assert "UNTIL=" in body and body.split("UNTIL=")[1][:16].endswith("Z")


@pytest.mark.parametrize(
    ("decide", "status"),
    [(None, "TENTATIVE"), ("approve", "CONFIRMED"), ("reject", "CANCELLED")],
)
def test_planned_releases_come_from_the_approvals_app(
    client, org, low_tier_service, staging, requester, approver, feed_url_of, decide, status
):
    release, _ = approvals.request_approval(
        data=factories.release_input(low_tier_service, staging), actor=requester
    )
    release.planned_at = soon(5)
    release.save(update_fields=["planned_at"])
    if decide:
        factories.decide(release, approver, verdict=decide)

    event = events(parse(client.get(feed_url_of(approver))))[uid("release", release.pk)]

    release.approval.refresh_from_db()
    expected = {None: "pending", "approve": "approved", "reject": "rejected"}[decide]
    assert release.approval.status == expected
    assert str(event["STATUS"]) == status


@pytest.mark.parametrize(
    "query",
    ["", "?token=", "?token=nonsense", "?token=1_abc", "?token=999999_abc", "?token=%00"],
)
def test_no_calendar_without_the_right_token(client, approver, planned, query, feed_url_of):
    feed_url_of(approver)

    response = client.get(f"/changes/calendar.ics{query}")

    assert response.status_code == 404
    assert b"BEGIN:VCALENDAR" not in response.content


def test_a_token_with_the_wrong_signature_answers_like_an_unknown_person(
    client, approver, planned, feed_url_of
):
    good = feed_url_of(approver)
    wrong = good[:-3] + ("aaa" if not good.endswith("aaa") else "bbb")

    unknown_person = "/changes/calendar.ics?token=424242_" + "a" * 43

    forged, unknown = client.get(wrong), client.get(unknown_person)

    assert (forged.status_code, forged.content) == (unknown.status_code, unknown.content)
    assert forged.status_code == 404


def test_a_deactivated_person_gets_no_calendar(client, approver, planned, feed_url_of):
    url = feed_url_of(approver)
    approver.is_active = False
    approver.save(update_fields=["is_active"])

    assert client.get(url).status_code == 404


def test_replacing_the_key_stops_the_old_url_at_once(client, approver, planned, feed_url_of):
    old = feed_url_of(approver)

    feeds.issue_feed_key(user=approver, actor=approver)
    new = feed_url_of(approver)

    assert new != old
    assert client.get(old).status_code == 404
    assert client.get(new).status_code == 200


def test_the_database_does_not_hold_the_token(approver, feed_url_of):
    url = feed_url_of(approver)
    token = url.split("token=")[1]

    key = CalendarFeedKey.objects.get(user=approver)

    assert token.split("_", 1)[1] not in key.nonce
    assert token not in str(list(LedgerEntry.objects.values_list("payload", flat=True)))


def test_issuing_and_replacing_are_ledgered_without_the_token(approver):
    first = feeds.issue_feed_key(user=approver, actor=approver)
    second = feeds.issue_feed_key(user=approver, actor=approver)

    entries = LedgerEntry.objects.filter(kind__startswith="calendar_feed.").order_by("seq")
    assert [e.kind for e in entries] == ["calendar_feed.issued", "calendar_feed.replaced"]
    assert all(e.payload == {"user": "alice"} for e in entries)
    assert first.nonce != second.nonce


def test_a_team_feed_for_a_member_holds_that_teams_services(
    client, approver, team, service, other_service, make_change, feed_url_of
):
    team.members.add(approver)
    on_team = make_change([other_service], soon(2), soon(2, 12))

    response = client.get(feed_url_of(approver) + "&team=payments")

    calendar = parse(response)
    assert str(calendar["X-WR-CALNAME"]) == "Signoff: Payments"
    assert uid("change", on_team.pk) not in events(calendar)  # billing: not visible to alice


def test_a_team_feed_for_someone_outside_the_team_is_refused(
    client, approver, team, planned, feed_url_of
):
    response = client.get(feed_url_of(approver) + "&team=payments")

    assert response.status_code == 404
    assert b"VCALENDAR" not in response.content


def test_an_administrators_team_feed_holds_every_service_of_the_team(
    client, administrator, team, planned, feed_url_of
):
    team.members.add(administrator)
    mine, theirs = planned

    uids = set(events(parse(client.get(feed_url_of(administrator) + "&team=payments"))))

    assert {uid("change", mine.pk), uid("change", theirs.pk)} <= uids


def test_a_person_with_no_services_gets_an_empty_but_valid_calendar(
    client, outsider, planned, make_freeze, feed_url_of
):
    make_freeze(soon(1).replace(tzinfo=None), soon(1, 12).replace(tzinfo=None))

    calendar = parse(client.get(feed_url_of(outsider)))

    assert calendar.walk("VEVENT") == []


@pytest.mark.parametrize(
    ("persona", "sees_payments", "sees_billing"),
    [
        ("approver", True, False),  # approves payments-api and web-frontend
        ("requester", True, False),  # requests releases of them
        ("other_service_approver", False, True),  # approves billing only
        ("administrator", True, True),  # may request releases of every service
        ("outsider", False, False),
    ],
)
def test_feed_permission_matrix(
    client, request, planned, feed_url_of, persona, sees_payments, sees_billing
):
    mine, theirs = planned
    person = request.getfixturevalue(persona)

    uids = set(events(parse(client.get(feed_url_of(person)))))

    assert (uid("change", mine.pk) in uids, uid("change", theirs.pk) in uids) == (
        sees_payments,
        sees_billing,
    )


def test_a_delegate_sees_the_services_lent_to_them(
    client, approver, cab_member, service, planned, feed_url_of
):
    mine, _ = planned
    Delegation.objects.create(
        delegator=approver,
        delegate=cab_member,
        service=service,
        starts_at=timezone.now() - timedelta(hours=1),
        ends_at=timezone.now() + timedelta(days=3),
        reason="Holiday",
        created_by=approver,
    )

    uids = set(events(parse(client.get(feed_url_of(cab_member)))))

    assert uid("change", mine.pk) in uids


def test_a_freeze_ended_early_stops_in_the_feed(
    client, approver, service, make_freeze, feed_url_of, administrator
):
    start = (timezone.now() - timedelta(days=3)).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    daily = make_freeze(start, start + timedelta(hours=2), recurrence="FREQ=DAILY")
    once = make_freeze(start, start + timedelta(days=10), name="Long one")
    now = timezone.now()
    for freeze in (daily, once):
        end_freeze(freeze=freeze, actor=administrator, reason="Over early", now=now)

    found = events(parse(client.get(feed_url_of(approver))))

    rule = found[uid("freeze", daily.pk)]["RRULE"]
    assert rule["UNTIL"][0] < now and rule["UNTIL"][0] > now - timedelta(seconds=2)
    assert abs(found[uid("freeze", once.pk)].decoded("DTEND") - now) < timedelta(seconds=1)

"""CAB meetings on the change calendar and in its iCal feeds, in their own time zone."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from icalendar import Calendar

from changes.cab.models import CabMeeting
from changes.calendar.feed import uid_host
from changes.calendar.schedule import entries_between
from tests.changes.calendar.conftest import feed_url_of  # noqa: F401

pytestmark = pytest.mark.django_db


def _meeting(services=(), days=3, **extra) -> CabMeeting:
    start = (timezone.now() + timedelta(days=days)).replace(
        minute=0, second=0, microsecond=0, tzinfo=UTC
    )
    meeting = CabMeeting.objects.create(
        title=extra.pop("title", "Weekly CAB"),
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        time_zone="Europe/London",
        quorum=2,
        **extra,
    )
    meeting.services.set(services)
    return meeting


def test_meetings_are_calendar_entries(service):
    meeting = _meeting([service])
    start = meeting.starts_at - timedelta(days=1)

    entries = [
        e
        for e in entries_between(
            service_ids=None, start=start, end=start + timedelta(days=2), expand=True
        )
        if e.kind == "cab meeting"
    ]

    assert len(entries) == 1
    entry = entries[0]
    assert (entry.uid, entry.title, entry.time_zone, entry.status) == (
        f"cab-meeting-{meeting.pk}",
        "CAB: Weekly CAB",
        "Europe/London",
        "CONFIRMED",
    )
    assert entry.url == f"/cab/meetings/{meeting.pk}/"
    assert entry.service_ids == frozenset({service.pk})
    assert entry.description == (
        "Change Advisory Board for payments-api; quorum 2, 0 items on the agenda."
    )


def test_the_feed_holds_meetings_on_the_persons_services_and_those_on_every_service(
    client,
    approver,
    service,
    other_service,
    feed_url_of,  # noqa: F811
):
    mine = _meeting([service], title="Payments CAB")
    everyone = _meeting([], days=4, title="Company CAB")
    theirs = _meeting([other_service], days=5, title="Billing CAB")
    cancelled = _meeting([service], days=6, title="Cancelled", status="cancelled")

    response = client.get(feed_url_of(approver))

    assert response.status_code == 200
    events = {str(e["UID"]): e for e in Calendar.from_ical(response.content).walk("VEVENT")}
    host = uid_host()
    assert f"cab-meeting-{theirs.pk}@{host}" not in events
    event = events[f"cab-meeting-{mine.pk}@{host}"]
    assert str(event["SUMMARY"]) == "CAB: Payments CAB"
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event["DTSTART"].dt == mine.starts_at
    assert f"cab-meeting-{everyone.pk}@{host}" in events
    assert str(events[f"cab-meeting-{cancelled.pk}@{host}"]["STATUS"]) == "CANCELLED"
    assert b"/cab/meetings/" in response.content

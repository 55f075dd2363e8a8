"""The change schedule as an RFC 5545 iCalendar feed, built with the `icalendar` library.

icalendar writes CRLF line endings and folds lines at 75 octets; each start and end is written
in the entry's own zone (DTSTART;TZID=...), with a VTIMEZONE for every zone used
(add_missing_timezones). A recurring freeze is one event with its RRULE and EXDATEs, in its
zone, so calendar apps repeat it at the same wall time across daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from icalendar import Calendar, Event, vRecur

from changes.calendar.entries import CalendarEntry

PRODID = "-//Signoff//Change schedule//EN"


def uid_host() -> str:
    """The host part of every UID: the site's host name, so UIDs stay put across refreshes."""
    return urlsplit(settings.SITE_URL).hostname or "signoff"


def _rule(entry: CalendarEntry, zone: ZoneInfo) -> vRecur:
    """The freeze's RRULE with UNTIL as UTC (RFC 5545 §3.3.10, with a zoned DTSTART). A freeze
        ended early repeats no more: its rule gets an UNTIL just before the end (a rule with a COUNT
    keeps it: RFC 5545 allows only one of the two)."""
    rule = vRecur.from_ical(entry.recurrence)
    until = rule.get("UNTIL", [None])[0]
    if isinstance(until, datetime):
        local = until if until.tzinfo else until.replace(tzinfo=zone)
        rule["UNTIL"] = [local.astimezone(UTC)]
    ended_at = entry.extra.get("ended_at")
    if ended_at is not None and "COUNT" not in rule:
        last = (ended_at - timedelta(seconds=1)).astimezone(UTC)
        current = rule.get("UNTIL", [None])[0]
        rule["UNTIL"] = [min(current, last) if current else last]
    return rule


def _event(entry: CalendarEntry, *, now: datetime, host: str) -> Event:
    zone = ZoneInfo(entry.time_zone)
    event = Event()
    event.add("uid", f"{entry.uid}@{host}")
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", entry.start.astimezone(zone))
    event.add("dtend", entry.end.astimezone(zone))
    event.add("summary", entry.title)
    event.add("status", entry.status)
    event.add("categories", [entry.kind])
    if entry.description:
        event.add("description", entry.description)
    if entry.url:
        event.add("url", f"{settings.SITE_URL}{entry.url}")
    if entry.recurrence:
        event.add("rrule", _rule(entry, zone))
        if entry.exdates:
            event.add("exdate", [wall.replace(tzinfo=zone) for wall in entry.exdates])
    return event


def build_feed(entries: list[CalendarEntry], *, name: str, now: datetime) -> bytes:
    """The calendar, as bytes ready to serve."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    host = uid_host()
    for entry in entries:
        calendar.add_component(_event(entry, now=now, host=host))
    calendar.add_missing_timezones()
    return calendar.to_ical()

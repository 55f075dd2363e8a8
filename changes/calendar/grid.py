"""The calendar page's layout: month (a grid of weeks) or week (days as columns), in the
viewer's time zone, each day holding the entries that overlap it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from changes.calendar.conflicts import Conflict
from changes.calendar.entries import CalendarEntry


@dataclass
class Shown:
    """An entry as the viewer reads it: times in their zone, and its conflicts."""

    entry: CalendarEntry
    when: str  # "2026-12-07 14:00 → 16:00 Europe/Berlin"
    conflicts: list[Conflict]
    url: str = ""  # the entry's page, when the viewer may open it

    @property
    def css_kind(self) -> str:
        return self.entry.kind.replace(" ", "-")


@dataclass
class DayItem:
    shown: Shown
    time: str  # the local start time on its first day, "…" on the days it continues


@dataclass
class Day:
    day: date
    in_period: bool
    is_today: bool
    items: list[DayItem] = field(default_factory=list)


@dataclass
class Period:
    """The days shown and the instants they span."""

    view: str  # "month" or "week"
    anchor: date
    first: date
    last: date  # inclusive
    zone: ZoneInfo

    @classmethod
    def around(cls, view: str, anchor: date, zone: ZoneInfo) -> Period:
        if view == "week":
            first = anchor - timedelta(days=anchor.weekday())
            return cls(view, anchor, first, first + timedelta(days=6), zone)
        month_start = anchor.replace(day=1)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        first = month_start - timedelta(days=month_start.weekday())
        last_of_month = next_month - timedelta(days=1)
        last = last_of_month + timedelta(days=6 - last_of_month.weekday())
        return cls(view, anchor, first, last, zone)

    def instant(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.zone).astimezone(UTC)

    @property
    def start(self) -> datetime:
        return self.instant(self.first)

    @property
    def end(self) -> datetime:
        return self.instant(self.last + timedelta(days=1))

    @property
    def title(self) -> str:
        if self.view == "week":
            return f"Week of {self.first:%-d %B %Y}"
        return f"{self.anchor:%B %Y}"

    def in_period(self, day: date) -> bool:
        return self.view == "week" or day.month == self.anchor.month

    @property
    def previous(self) -> date:
        if self.view == "week":
            return self.anchor - timedelta(days=7)
        return (self.anchor.replace(day=1) - timedelta(days=1)).replace(day=1)

    @property
    def next(self) -> date:
        if self.view == "week":
            return self.anchor + timedelta(days=7)
        return (self.anchor.replace(day=1) + timedelta(days=32)).replace(day=1)


def when(entry: CalendarEntry, zone: ZoneInfo) -> str:
    """The entry's window in the viewer's zone, with the zone named."""
    start, end = entry.start.astimezone(zone), entry.end.astimezone(zone)
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} → {until} {zone.key}"


def lay_out(period: Period, shown: list[Shown], today: date) -> list[list[Day]]:
    """Weeks of days (one week for the week view), each day with the entries overlapping it."""
    days = []
    day = period.first
    while day <= period.last:
        days.append(Day(day, period.in_period(day), day == today))
        day += timedelta(days=1)
    for item in shown:
        local_start = item.entry.start.astimezone(period.zone)
        for cell in days:
            opens, closes = period.instant(cell.day), period.instant(cell.day + timedelta(days=1))
            if item.entry.start < closes and item.entry.end > opens:
                first = local_start.date() == cell.day
                cell.items.append(DayItem(item, f"{local_start:%H:%M}" if first else "…"))
    return [days[i : i + 7] for i in range(0, len(days), 7)]

"""A CAB schedule's rule: built from a simple form, read back, and expanded into meetings.

The rule is an RFC 5545 RRULE over wall times in the schedule's zone, so "every Tuesday at
14:00 Europe/London" stays at 14:00 on the local clock across daylight-saving changes; each
occurrence becomes a UTC instant only at the end (changes.wall_time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.rrule import rrulestr

from changes.cab.models import CabSchedule
from changes.wall_time import wall_to_instant

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
FREQUENCIES = ("weekly", "fortnightly", "monthly")


@dataclass(frozen=True)
class Rule:
    """The parts of a rule the schedule form offers: how often, on which days, which week."""

    frequency: str  # weekly, fortnightly, monthly
    days: tuple[str, ...]  # two-letter RFC 5545 weekdays
    week_of_month: int = 1  # monthly only: 1-4, or -1 for the last

    def to_rrule(self) -> str:
        """The RRULE text, e.g. FREQ=WEEKLY;INTERVAL=2;BYDAY=TU or FREQ=MONTHLY;BYDAY=1TU."""
        days = [day for day in WEEKDAYS if day in self.days]
        if self.frequency == "monthly":
            return "FREQ=MONTHLY;BYDAY=" + ",".join(f"{self.week_of_month}{d}" for d in days)
        interval = ";INTERVAL=2" if self.frequency == "fortnightly" else ""
        return f"FREQ=WEEKLY{interval};BYDAY=" + ",".join(days)

    @classmethod
    def from_rrule(cls, text: str) -> Rule:
        """Read back a rule this module wrote (the form shows it for editing)."""
        parts = dict(part.split("=", 1) for part in text.upper().split(";") if "=" in part)
        byday = [d for d in parts.get("BYDAY", "").split(",") if d]
        if parts.get("FREQ") == "MONTHLY":
            week = int(byday[0][:-2]) if byday and byday[0][:-2] else 1
            return cls("monthly", tuple(d[-2:] for d in byday), week)
        frequency = "fortnightly" if parts.get("INTERVAL") == "2" else "weekly"
        return cls(frequency, tuple(byday))


def occurrences(schedule: CabSchedule, after: datetime, before: datetime) -> list[datetime]:
    """Start instants (UTC) of the schedule's meetings in [after, before)."""
    zone = schedule.zone
    local_start = schedule.first_start.astimezone(zone).replace(tzinfo=None)
    rule = rrulestr(schedule.rrule, dtstart=local_start)
    # Compare wall times with a day's margin each side; the exact cut is made on instants.
    low = after.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    high = before.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    starts = [wall_to_instant(wall, zone) for wall in rule.between(low, high, inc=True)]
    return [start for start in starts if after <= start < before]

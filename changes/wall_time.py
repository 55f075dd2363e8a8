"""Wall times: a naive local time read in a named zone, as freezes and change windows are
written. Shared by the changes concerns (freezes, change records) from below them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django import forms

WALL_FORMAT = "%Y-%m-%dT%H:%M:%S"


def wall_to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall time in `zone`. An ambiguous time (clocks going back)
    is its first occurrence; a time that does not exist (clocks jumping forward) lands after
    the gap, as the RFC 5545 says for recurrence instances."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def wall_exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether `wall` is a time the clocks in `zone` actually show (not skipped by DST)."""
    instant = wall_to_instant(wall, zone)
    return instant.astimezone(zone).replace(tzinfo=None) == wall


WALL_INPUTS = [WALL_FORMAT, "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]


class WallTimeField(forms.DateTimeField):
    """A wall time with no zone: the freeze's own time zone gives it its meaning."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}, format=WALL_FORMAT)

    def __init__(self, **kwargs) -> None:
        super().__init__(input_formats=WALL_INPUTS, **kwargs)

    def to_python(self, value):
        # Django would attach the server's zone; the wall time must stay naive.
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=None)
        for pattern in WALL_INPUTS:
            try:
                return datetime.strptime(str(value).strip(), pattern)
            except ValueError:
                continue
        raise forms.ValidationError("Enter a local time as YYYY-MM-DDTHH:MM.", code="invalid")

    def prepare_value(self, value):
        return value.strftime(WALL_FORMAT) if isinstance(value, datetime) else value

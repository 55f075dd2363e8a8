"""Freeze windows in their own time zone: one-off and recurring, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from changes.freezes.models import Freeze
from changes.freezes.services import FreezeInput, _validated
from changes.wall_time import wall_to_instant
from governance.models import LedgerEntry

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def unsaved(time_zone: str, start: datetime, end: datetime, rule: str = "", exdates=()) -> Freeze:
    """A freeze built from the same validation the services use, without the database."""
    values = _validated(
        FreezeInput(
            name="Freeze",
            kind="hard",
            time_zone=time_zone,
            local_start=start,
            local_end=end,
            environments=[object()],
            reason="test",
            recurrence=rule,
            exdates=list(exdates),
        )
    )
    return Freeze(**values)


def test_a_one_off_freeze_covers_its_local_window_only():
    freeze = unsaved("Europe/Berlin", datetime(2026, 12, 24, 0, 0), datetime(2026, 12, 27, 0, 0))

    # Berlin is UTC+1 in December: midnight there is 23:00 UTC the day before.
    assert freeze.occurrence_at(utc(2026, 12, 23, 22, 59)) is None
    assert freeze.occurrence_at(utc(2026, 12, 23, 23, 0)) == (
        utc(2026, 12, 23, 23, 0),
        utc(2026, 12, 26, 23, 0),
    )
    assert freeze.occurrence_at(utc(2026, 12, 26, 23, 0)) is None


def test_a_weekly_freeze_keeps_its_wall_time_across_the_spring_dst_change():
    # Fridays 18:00 to Mondays 06:00, Berlin; clocks go forward on Sunday 29 March 2026.
    freeze = unsaved(
        "Europe/Berlin", datetime(2026, 3, 20, 18, 0), datetime(2026, 3, 23, 6, 0), "FREQ=WEEKLY"
    )

    winter = freeze.occurrence_at(utc(2026, 3, 21, 12, 0))
    across = freeze.occurrence_at(utc(2026, 3, 28, 12, 0))
    summer = freeze.occurrence_at(utc(2026, 4, 4, 12, 0))

    assert winter == (utc(2026, 3, 20, 17, 0), utc(2026, 3, 23, 5, 0))
    # Starts in winter time (UTC+1), ends in summer time (UTC+2): one hour shorter in UTC.
    assert across == (utc(2026, 3, 27, 17, 0), utc(2026, 3, 30, 4, 0))
    assert summer == (utc(2026, 4, 3, 16, 0), utc(2026, 4, 6, 4, 0))
    assert freeze.occurrence_at(utc(2026, 3, 30, 4, 30)) is None


def test_a_daily_night_freeze_across_the_autumn_change_in_new_york():
    # 22:00 to 06:00 every night; clocks go back at 02:00 on Sunday 1 November 2026.
    freeze = unsaved(
        "America/New_York",
        datetime(2026, 10, 30, 22, 0),
        datetime(2026, 10, 31, 6, 0),
        "FREQ=DAILY",
    )

    night = freeze.occurrence_at(utc(2026, 11, 1, 7, 0))

    # 22:00 EDT (UTC-4) to 06:00 EST (UTC-5): nine hours on the clock of UTC.
    assert night == (utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 11, 0))


def test_skipped_dates_are_not_frozen():
    freeze = unsaved(
        "Europe/Berlin",
        datetime(2026, 12, 5, 0, 0),
        datetime(2026, 12, 6, 0, 0),
        "FREQ=WEEKLY",
        exdates=[datetime(2026, 12, 12, 0, 0)],
    )

    assert freeze.occurrence_at(utc(2026, 12, 5, 12, 0)) is not None
    assert freeze.occurrence_at(utc(2026, 12, 12, 12, 0)) is None
    assert freeze.occurrence_at(utc(2026, 12, 19, 12, 0)) is not None


def test_a_bounded_rule_records_when_its_last_occurrence_ends():
    freeze = unsaved(
        "UTC", datetime(2026, 1, 1, 0, 0), datetime(2026, 1, 1, 6, 0), "FREQ=DAILY;COUNT=3"
    )

    assert freeze.last_ends_at == utc(2026, 1, 3, 6, 0)
    assert (
        unsaved("UTC", datetime(2026, 1, 1), datetime(2026, 1, 2), "FREQ=DAILY").last_ends_at
        is None
    )


def test_ending_early_cuts_the_occurrence_short():
    freeze = unsaved("UTC", datetime(2026, 1, 1), datetime(2026, 1, 10))
    freeze.ended_at = utc(2026, 1, 3)

    assert freeze.occurrence_at(utc(2026, 1, 2)) == (utc(2026, 1, 1), utc(2026, 1, 3))
    assert freeze.occurrence_at(utc(2026, 1, 4)) is None


@pytest.mark.parametrize(
    ("zone", "start", "end", "rule", "field", "message"),
    [
        ("Mars/Olympus", datetime(2026, 1, 1), datetime(2026, 1, 2), "", "time_zone", "Unknown"),
        ("UTC", datetime(2026, 1, 2), datetime(2026, 1, 1), "", "end", "after the start"),
        # 02:30 on 29 March 2026 does not exist in Berlin: the clocks jump from 02:00 to 03:00.
        (
            "Europe/Berlin",
            datetime(2026, 3, 29, 2, 30),
            datetime(2026, 3, 29, 5),
            "",
            "start",
            "does not exist",
        ),
        (
            "UTC",
            datetime(2026, 1, 1),
            datetime(2026, 1, 2),
            "FREQ=HOURLY",
            "recurrence",
            "at most daily",
        ),
        (
            "UTC",
            datetime(2026, 1, 1),
            datetime(2026, 1, 2),
            "FREQ=NEVER",
            "recurrence",
            "not valid",
        ),
        (
            "UTC",
            datetime(2026, 1, 1),
            datetime(2026, 1, 2),
            "FREQ=DAILY;BYHOUR=3",
            "recurrence",
            "BYHOUR",
        ),
        (
            "UTC",
            datetime(2026, 1, 1),
            datetime(2026, 1, 2),
            "FREQ=DAILY;UNTIL=20270101T000000Z",
            "recurrence",
            "without Z",
        ),
        ("UTC", datetime(2026, 1, 1), datetime(2028, 1, 2), "", "end", "366 days"),
    ],
)
def test_bad_freezes_are_refused_with_the_field_named(zone, start, end, rule, field, message):
    with pytest.raises(Exception) as caught:
        unsaved(zone, start, end, rule)

    assert field in caught.value.fields
    assert message in caught.value.message
    assert LedgerEntry.objects.count() == 0


def test_a_skipped_date_that_is_not_an_occurrence_is_refused():
    with pytest.raises(Exception) as caught:
        unsaved(
            "UTC",
            datetime(2026, 1, 1),
            datetime(2026, 1, 2),
            "FREQ=WEEKLY",
            exdates=[datetime(2026, 1, 2)],
        )

    assert caught.value.fields == {"exdates": ["2026-01-02T00:00:00 is not an occurrence."]}


# --- Properties: whatever the zone, day and rule, occurrences keep their wall time ------------

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "Europe/London",
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=datetime(2025, 1, 1).date(), max_value=datetime(2027, 12, 31).date()),
    hour=st.integers(min_value=0, max_value=23),
    hours=st.integers(min_value=1, max_value=80),
    rule=st.sampled_from(["FREQ=DAILY", "FREQ=WEEKLY", "FREQ=WEEKLY;BYDAY=SA,SU", "FREQ=MONTHLY"]),
    probe_hours=st.integers(min_value=0, max_value=24 * 60),
)
def test_recurring_occurrences_start_at_their_wall_time_and_cover_exactly_their_window(
    zone, day, hour, hours, rule, probe_hours
):
    tz = ZoneInfo(zone)
    start = datetime(day.year, day.month, day.day, hour)
    end = start + timedelta(hours=hours)
    try:
        freeze = unsaved(zone, start, end, rule)
    except Exception as exc:  # a start or end the clocks skip is refused; nothing to check
        assert "does not exist" in exc.message
        return
    probe = wall_to_instant(start, tz) + timedelta(hours=probe_hours, minutes=7)

    found = freeze.occurrence_at(probe)

    # Brute force: every occurrence start from the rule, turned into instants one by one.
    expected = None
    for wall in freeze.rule().between(
        start - timedelta(days=1), start + timedelta(days=70), inc=True
    ):
        s, e = wall_to_instant(wall, tz), wall_to_instant(wall + timedelta(hours=hours), tz)
        if s <= probe < e:
            expected = (s, e)
            break
    assert (found is None) == (expected is None)
    if found:
        assert found[0] <= probe < found[1]
        local = found[0].astimezone(tz)
        # The wall time holds, except when the clocks skipped it (then it lands after the gap).
        if wall_to_instant(local.replace(tzinfo=None), tz) == found[0]:
            assert (local.hour, local.minute) == (hour, 0) or local.utcoffset() != tz.utcoffset(
                datetime(local.year, local.month, local.day, hour)
            )


def test_a_freeze_is_created_through_the_service_with_a_ledger_entry(administrator, production):
    from changes.freezes.services import create_freeze

    freeze = create_freeze(
        data=FreezeInput(
            name="Year end",
            kind="hard",
            time_zone="Europe/Berlin",
            local_start=datetime(2026, 12, 24),
            local_end=datetime(2027, 1, 2),
            environments=[production],
            reason="Year-end close",
        ),
        actor=administrator,
    )

    entry = LedgerEntry.objects.get(kind="freeze.created")
    assert entry.subject == f"freeze:{freeze.pk}"
    assert entry.actor == "ada"
    assert entry.payload["start"] == "2026-12-24T00:00:00"
    assert entry.payload["environments"] == ["production"]
    assert freeze.starts_at == utc(2026, 12, 23, 23, 0)


def test_only_administrators_create_freezes(approver, production):
    from changes.freezes.exceptions import FreezeForbidden
    from changes.freezes.services import create_freeze

    with pytest.raises(FreezeForbidden):
        create_freeze(
            data=FreezeInput(
                name="x",
                kind="hard",
                time_zone="UTC",
                local_start=datetime(2026, 1, 1),
                local_end=datetime(2026, 1, 2),
                environments=[production],
                reason="r",
            ),
            actor=approver,
        )

    assert Freeze.objects.count() == 0
    assert not LedgerEntry.objects.filter(kind__startswith="freeze.").exists()

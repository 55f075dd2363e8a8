"""CAB schedules: a rule built from plain choices, meetings materialised at the same local time
across daylight-saving changes, idempotently, and only administrators change a schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from changes.cab import services as cab
from changes.cab.exceptions import InvalidSchedule
from changes.cab.models import CabMeeting
from changes.cab.recurrence import Rule
from governance.exceptions import PermissionDenied
from governance.models import LedgerEntry

pytestmark = pytest.mark.django_db


def weekly_tuesday(members, **overrides) -> cab.ScheduleInput:
    values = {
        "name": "Weekly CAB",
        "rule": Rule("weekly", ("TU",)),
        "first_day": date(2026, 10, 1),
        "local_time": time(14, 0),
        "time_zone": "Europe/London",
        "duration_minutes": 60,
        "quorum": 2,
        "members": members,
    }
    values.update(overrides)
    return cab.ScheduleInput(**values)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Rule("weekly", ("TU",)), "FREQ=WEEKLY;BYDAY=TU"),
        (Rule("fortnightly", ("TH", "MO")), "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH"),
        (Rule("monthly", ("WE",), 1), "FREQ=MONTHLY;BYDAY=1WE"),
        (Rule("monthly", ("FR",), -1), "FREQ=MONTHLY;BYDAY=-1FR"),
    ],
)
def test_rules_are_written_and_read_back(rule, text):
    assert rule.to_rrule() == text
    read = Rule.from_rrule(text)
    assert (read.frequency, set(read.days), read.week_of_month) == (
        rule.frequency,
        set(rule.days),
        rule.week_of_month,
    )


def test_a_weekly_meeting_stays_at_14_00_london_time_across_the_clock_change(
    administrator, cab_member, second_cab_member
):
    cab.save_schedule(data=weekly_tuesday([cab_member, second_cab_member]), actor=administrator)
    # British Summer Time ends on Sunday 25 October 2026.
    now = datetime(2026, 10, 12, 12, 0, tzinfo=UTC)

    created = cab.materialise_meetings(now=now, days=28)

    starts = [m.starts_at for m in created]
    assert starts == [
        datetime(2026, 10, 13, 13, 0, tzinfo=UTC),  # 14:00 BST
        datetime(2026, 10, 20, 13, 0, tzinfo=UTC),
        datetime(2026, 10, 27, 14, 0, tzinfo=UTC),  # 14:00 GMT
        datetime(2026, 11, 3, 14, 0, tzinfo=UTC),
    ]
    assert {m.local_start.strftime("%H:%M") for m in created} == {"14:00"}
    meeting = created[0]
    assert (meeting.quorum, meeting.time_zone, meeting.ends_at - meeting.starts_at) == (
        2,
        "Europe/London",
        timedelta(hours=1),
    )
    assert set(meeting.members.all()) == {cab_member, second_cab_member}


def test_materialising_twice_creates_nothing_more(administrator, cab_member, second_cab_member):
    cab.save_schedule(data=weekly_tuesday([cab_member, second_cab_member]), actor=administrator)
    now = datetime(2026, 10, 12, 12, 0, tzinfo=UTC)
    cab.materialise_meetings(now=now, days=28)
    entries = LedgerEntry.objects.count()

    assert cab.materialise_meetings(now=now, days=28) == []
    assert CabMeeting.objects.count() == 4
    assert LedgerEntry.objects.count() == entries


def test_a_fortnightly_meeting_skips_every_other_week(administrator, cab_member, second_cab_member):
    data = weekly_tuesday(
        [cab_member, second_cab_member],
        rule=Rule("fortnightly", ("TU",)),
        time_zone="America/New_York",
        local_time=time(9, 30),
    )
    cab.save_schedule(data=data, actor=administrator)
    # US daylight time ends on Sunday 1 November 2026.
    created = cab.materialise_meetings(now=datetime(2026, 10, 12, tzinfo=UTC), days=28)

    assert [m.starts_at for m in created] == [
        datetime(2026, 10, 13, 13, 30, tzinfo=UTC),  # 09:30 EDT
        datetime(2026, 10, 27, 13, 30, tzinfo=UTC),
    ]
    created = cab.materialise_meetings(now=datetime(2026, 11, 1, tzinfo=UTC), days=14)
    assert [m.starts_at for m in created] == [datetime(2026, 11, 10, 14, 30, tzinfo=UTC)]  # EST


def test_only_administrators_change_a_schedule(cab_member, second_cab_member):
    with pytest.raises(PermissionDenied):
        cab.save_schedule(data=weekly_tuesday([cab_member, second_cab_member]), actor=cab_member)
    assert not LedgerEntry.objects.filter(kind="cab.schedule_saved").exists()


def test_a_quorum_larger_than_the_members_is_refused(administrator, cab_member):
    with pytest.raises(InvalidSchedule) as refused:
        cab.save_schedule(data=weekly_tuesday([cab_member]), actor=administrator)
    assert refused.value.message == "A quorum of 2 needs at least 2 members."
    assert refused.value.fields == {"quorum": ["More than the members listed."]}


def test_saving_a_schedule_is_ledgered(administrator, cab_member, second_cab_member):
    schedule = cab.save_schedule(
        data=weekly_tuesday([cab_member, second_cab_member]), actor=administrator
    )
    entry = LedgerEntry.objects.get(kind="cab.schedule_saved")
    assert entry.actor == "ada"
    assert entry.payload["rrule"] == "FREQ=WEEKLY;BYDAY=TU"
    assert entry.payload["first_start"] == "2026-10-01T13:00:00+00:00"
    assert entry.payload["members"] == ["carol", "cecil"]
    assert schedule.first_start == datetime(2026, 10, 1, 13, 0, tzinfo=UTC)

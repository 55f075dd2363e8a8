"""The detectors on seeded histories: a clean, realistic history raises nothing; the same
history with exactly one known anomaly raises exactly that alert, naming the right decisions;
running again raises nothing new."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance.models import LedgerEntry, Team
from reporting.anomalies.detectors import hours_label, usual_hours
from reporting.anomalies.models import AnomalyAlert
from reporting.anomalies.services import detect_anomalies
from tests.reporting.anomalies.history import NOW, Device, History, local, person, routine

pytestmark = pytest.mark.django_db

ALICE_AT_HOME = Device("198.51.100.7", "a1b2c3d4e5f60718")
BOB_AT_HOME = Device("198.51.100.8", "b1b2c3d4e5f60718")
NINA_AT_HOME = Device("198.51.100.9", "c1b2c3d4e5f60718")
TUESDAY = NOW  # the evaluation day's date
START_OF_TUESDAY = datetime(2026, 12, 8, tzinfo=UTC)


@pytest.fixture
def people(db):
    """Alice (London) and Bob (Berlin) in Payments, Nina (New York) in no team."""
    team = Team.objects.create(slug="payments", name="Payments")
    alice, bob = person("alice"), person("bob", "Europe/Berlin")
    team.members.add(alice, bob)
    return {"alice": alice, "bob": bob, "nina": person("nina", "America/New_York")}


@pytest.fixture
def history(people) -> History:
    """Ninety days of everyday work by all three: nothing unusual in it."""
    history = History()
    routine(history, people["alice"], ALICE_AT_HOME)
    routine(history, people["bob"], BOB_AT_HOME)
    routine(history, people["nina"], NINA_AT_HOME)
    return history


def raised() -> list[AnomalyAlert]:
    return detect_anomalies(now=NOW)


def decision_ids(alert: AnomalyAlert) -> list[int]:
    return [row["decision_id"] for row in alert.evidence["decisions"]]


def test_a_clean_realistic_history_raises_nothing(history):
    decisions = history.save()
    assert len(decisions) > 350
    assert {d.verdict for d in decisions} == {"approve", "reject"}
    assert raised() == []
    assert not AnomalyAlert.objects.exists()
    assert not LedgerEntry.objects.filter(kind="anomaly.raised").exists()


def test_a_tier_one_approval_seconds_after_the_stage_opened_is_rubber_stamping(history, people):
    history.add(
        people["alice"],
        local(people["alice"], TUESDAY, 11, 30),
        large=True,
        opened_before=timedelta(seconds=8),
        step_up="totp",
        address=ALICE_AT_HOME.address,
        device=ALICE_AT_HOME.device,
    )
    # As quick, on a routine tier-3 release: not worth an alert.
    history.add(
        people["bob"], local(people["bob"], TUESDAY, 11), opened_before=timedelta(seconds=5)
    )
    stamped = history.save()[-2]

    [alert] = raised()

    assert (alert.kind, alert.person, alert.severity) == ("rubber_stamp", people["alice"], "high")
    assert decision_ids(alert) == [stamped.pk]
    assert alert.evidence["decisions"][0]["seconds"] == 8.0
    assert alert.evidence["decisions"][0]["release_id"] == stamped.request.release_id
    assert "8 s after the stage opened (tier-1 service)" in alert.summary


def test_thresholds_are_settings(settings, history, people):
    settings.SIGNOFF_ANOMALY_RUBBER_STAMP_SECONDS = 5
    history.add(
        people["alice"],
        local(people["alice"], TUESDAY, 11, 30),
        large=True,
        opened_before=timedelta(seconds=8),
    )
    history.save()
    assert raised() == []


def test_an_approval_far_outside_the_persons_own_hours_is_off_hours(history, people):
    history.add(people["alice"], local(people["alice"], TUESDAY, 3, 10))
    # 11:00 in New York is 16:00 UTC, outside most Europeans' day but inside Nina's.
    history.add(
        people["nina"],
        local(people["nina"], TUESDAY - timedelta(days=1), 11),
        address=NINA_AT_HOME.address,
    )
    night = history.save()[-2]

    [alert] = raised()

    assert (alert.kind, alert.person) == ("off_hours", people["alice"])
    assert decision_ids(alert) == [night.pk]
    assert alert.evidence["time_zone"] == "Europe/London"
    assert set(alert.evidence["usual_hours"]) <= set(range(9, 17))
    assert "at 03:10 (GMT)" in alert.summary


def test_a_person_with_a_short_history_has_no_usual_hours_yet(people):
    history = History()
    newcomer = person("newton")
    for days in range(1, 6):
        history.add(newcomer, local(newcomer, NOW - timedelta(days=days * 2), 10))
    history.add(newcomer, local(newcomer, TUESDAY, 2))
    history.save()
    assert raised() == []


def test_many_more_decisions_than_usual_today_is_a_volume_spike(history, people):
    victor = person("victor", "UTC")  # in no team: only his own numbers move
    routine(history, victor, Device("198.51.100.20", "d1b2c3d4e5f60718"))
    for n in range(9):
        history.add(victor, local(victor, TUESDAY, 9 + n // 2, (n % 2) * 30))
    history.save()
    today = list(
        victor.decisions.filter(created_at__gte=START_OF_TUESDAY).values_list("pk", flat=True)
    )

    [alert] = raised()

    assert (alert.kind, alert.person, alert.team) == ("volume_spike", victor, None)
    assert sorted(decision_ids(alert)) == sorted(today)
    assert alert.evidence["today"] == len(today) == 11
    assert alert.evidence["limit"] < 11
    assert alert.fingerprint == f"volume_spike:user:{victor.pk}:2026-12-08"


def test_a_team_busier_than_usual_today_is_a_team_volume_spike(people):
    """Each of four members does a few more than usual (too few to stand out alone); together
    the team does."""
    history = History()
    team = Team.objects.create(slug="web", name="Web Experience")
    members = [person(f"member{n}") for n in range(4)]
    team.members.add(*members)
    for index, member in enumerate(members):
        routine(history, member, Device(f"198.51.100.{30 + index}", f"e{index}b2c3d4e5f60718"))
        for hour in (10, 11, 12):
            history.add(member, local(member, TUESDAY, hour, 15))
    history.save()

    [alert] = raised()

    assert (alert.kind, alert.person, alert.team) == ("volume_spike", None, team)
    assert alert.evidence["today"] == 20
    assert len(alert.evidence["decisions"]) == 20


def test_two_people_approving_each_others_releases_is_reciprocity(history, people):
    xavier, yusuf = person("xavier"), person("yusuf")
    for week in range(3):
        day = NOW - timedelta(days=10 + week * 7)
        history.add(xavier, local(xavier, day, 11), author=yusuf)
        history.add(yusuf, local(yusuf, day, 14), author=xavier)
    # Alice approves a release of Bob's once: one way, once, is no pattern.
    history.add(
        people["alice"], local(people["alice"], NOW - timedelta(days=3), 12), author=people["bob"]
    )
    pairs = history.save()[-7:-1]

    [alert] = raised()

    assert (alert.kind, alert.person, alert.counterpart) == ("reciprocity", xavier, yusuf)
    assert sorted(decision_ids(alert)) == sorted(d.pk for d in pairs)
    assert alert.summary == (
        "xavier approved 3 of yusuf's releases and yusuf approved 3 of xavier's."
    )


def test_an_approver_with_many_decisions_and_no_rejection_never_rejects(history, people):
    nora = person("nora")
    days = [day for day in (NOW - timedelta(days=n) for n in range(2, 80)) if day.weekday() < 5]
    for index, day in enumerate(days[:32]):
        history.add(nora, local(nora, day, 9 + index % 8, 20))
    history.save()

    [alert] = raised()

    assert (alert.kind, alert.person, alert.severity) == ("never_rejects", nora, "low")
    assert alert.evidence["total"] == 32
    assert sorted(decision_ids(alert)) == sorted(nora.decisions.values_list("pk", flat=True))


def test_a_step_up_decision_from_a_new_address_is_flagged(history, people):
    history.add(
        people["alice"],
        local(people["alice"], TUESDAY, 11),
        large=True,
        step_up="totp",
        address="203.0.113.99",
        device=ALICE_AT_HOME.device,
    )
    # The same place as always, and a new place without step-up: neither is flagged.
    history.add(
        people["bob"],
        local(people["bob"], TUESDAY, 11),
        large=True,
        step_up="totp",
        address=BOB_AT_HOME.address,
        device=BOB_AT_HOME.device,
    )
    history.add(people["nina"], local(people["nina"], TUESDAY, 9), address="203.0.113.50")
    elsewhere = history.save()[-3]

    [alert] = raised()

    assert (alert.kind, alert.person, alert.severity) == ("new_client", people["alice"], "high")
    assert decision_ids(alert) == [elsewhere.pk]
    assert alert.evidence["new"] == ["address"]
    assert alert.evidence["decisions"][0]["address"] == "203.0.113.99"


def test_running_again_raises_nothing_new(history, people):
    history.add(people["alice"], local(people["alice"], TUESDAY, 3, 10))
    history.save()
    first = raised()
    assert [a.kind for a in first] == ["off_hours"]

    assert detect_anomalies(now=NOW) == []
    assert detect_anomalies(now=NOW + timedelta(hours=2)) == []
    assert AnomalyAlert.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="anomaly.raised").count() == 1


def test_raising_is_ledgered_with_the_decisions_behind_it(history, people):
    history.add(people["alice"], local(people["alice"], TUESDAY, 3, 10))
    night = history.save()[-1]
    [alert] = raised()
    entry = LedgerEntry.objects.get(kind="anomaly.raised")
    assert entry.subject == f"anomaly:{alert.pk}"
    assert entry.payload["kind"] == "off_hours"
    assert entry.payload["decisions"] == [night.pk]


def test_usual_hours_are_the_fewest_hours_holding_the_coverage():
    hours = [9] * 40 + [10] * 30 + [14] * 25 + [23] * 5
    assert usual_hours(hours, 0.95) == {9, 10, 14}
    assert usual_hours(hours, 1.0) == {9, 10, 14, 23}
    assert hours_label({8, 9, 10, 14}) == "08:00-11:00, 14:00-15:00"

"""Conflict detection: overlapping changes on the same or a directly dependent service, windows
inside freezes, approvers off work or delegated away, and constant query counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template.loader import render_to_string

from approvals import services as approvals
from approvals.calendar import release_conflicts
from changes.calendar.conflicts import at_work_during, change_conflicts, window_conflicts
from changes.models import ChangeRecord
from governance.models import Delegation, Role, Service
from tests import factories
from tests.changes.calendar.conftest import at


def delegate_away(person, delegate, starts_at, ends_at) -> Delegation:
    """A delegation row as the delegation service writes it (its checks are tested there; the
    fixed week of these tests may lie in the past when they run)."""
    return Delegation.objects.create(
        delegator=person,
        delegate=delegate,
        starts_at=starts_at,
        ends_at=ends_at,
        reason="Holiday",
        created_by=person,
    )


def kinds(conflicts) -> list[str]:
    return [c.kind for c in conflicts]


@pytest.fixture
def staffed(approver, second_approver, service, other_service, low_tier_service):
    """Every service has approvers in working hours (UTC, 09-17), so only what a test adds
    conflicts."""
    factories.grant(approver, Role.APPROVER, other_service)


@pytest.fixture
def planned(make_change, service, staffed):
    return make_change([service], at(1, 10), at(1, 12), title="Rotate keys")


def test_a_change_alone_has_no_conflicts(planned):
    assert change_conflicts(planned) == []


def test_an_overlapping_change_on_the_same_service_conflicts(planned, make_change, service):
    other = make_change([service], at(1, 11), at(1, 13), title="Database upgrade")

    (conflict,) = change_conflicts(planned)

    assert conflict.kind == "overlap"
    assert conflict.label == other.ref
    assert conflict.message == (
        f"{other.ref} Database upgrade is planned from 2026-12-08 11:00 UTC on payments-api too."
    )


def test_touching_windows_do_not_overlap(planned, make_change, service):
    make_change([service], at(1, 12), at(1, 14))

    assert change_conflicts(planned) == []


def test_a_cancelled_change_does_not_conflict(planned, make_change, service):
    make_change([service], at(1, 11), at(1, 13), state=ChangeRecord.State.CANCELLED)

    assert change_conflicts(planned) == []


def test_an_ended_change_reports_no_conflicts(planned, make_change, service):
    make_change([service], at(1, 11), at(1, 13))
    planned.state = ChangeRecord.State.CLOSED

    assert change_conflicts(planned) == []


@pytest.mark.parametrize("direction", ["depends_on", "needed_by"])
def test_a_change_on_a_directly_dependent_service_conflicts(
    planned, make_change, service, other_service, direction
):
    if direction == "depends_on":
        service.depends_on.add(other_service)
        relation = "which payments-api depends on"
    else:
        other_service.depends_on.add(service)
        relation = "which payments-api is needed by"
    other = make_change([other_service], at(1, 9), at(1, 11))

    (conflict,) = change_conflicts(planned)

    assert conflict.kind == "overlap"
    assert conflict.message.endswith(f"on billing, {relation}.")
    assert conflict.label == other.ref


def test_a_change_on_an_unrelated_service_does_not_conflict(planned, make_change, other_service):
    make_change([other_service], at(1, 9), at(1, 11))

    assert change_conflicts(planned) == []


def test_a_window_inside_a_freeze_on_the_service_conflicts(planned, make_freeze, service):
    make_freeze(at(1, 0).replace(tzinfo=None), at(1, 23).replace(tzinfo=None), services=[service])

    (conflict,) = change_conflicts(planned)

    assert conflict.kind == "freeze"
    assert "hard freeze 'Quarter close'" in conflict.message
    assert "a change names no environment, so a freeze in any environment counts" in (
        conflict.message
    )


def test_a_freeze_on_every_service_and_a_soft_freeze_count_too(planned, make_freeze, staging):
    make_freeze(
        at(1, 11).replace(tzinfo=None),
        at(1, 11, 30).replace(tzinfo=None),
        kind="soft",
        environments=[staging],
    )

    (conflict,) = change_conflicts(planned)

    assert conflict.kind == "freeze"
    assert "soft freeze" in conflict.message
    assert "The freeze holds Staging" in conflict.message


def test_a_freeze_on_another_service_or_another_day_does_not_conflict(
    planned, make_freeze, other_service, service
):
    make_freeze(
        at(1, 0).replace(tzinfo=None), at(1, 23).replace(tzinfo=None), services=[other_service]
    )
    make_freeze(at(2, 0).replace(tzinfo=None), at(2, 23).replace(tzinfo=None), services=[service])

    assert change_conflicts(planned) == []


def test_an_occurrence_of_a_recurring_freeze_conflicts_and_a_skipped_one_does_not(
    planned, make_freeze, service, make_change
):
    monday = at(0, 9).replace(tzinfo=None)
    make_freeze(
        monday,
        monday + timedelta(hours=4),
        recurrence="FREQ=DAILY;COUNT=5",
        exdates=[monday + timedelta(days=2)],
        services=[service],
    )
    wednesday = make_change([service], at(2, 10), at(2, 11))

    assert kinds(change_conflicts(planned)) == ["freeze"]  # Tuesday 10:00 is in Tuesday's
    assert change_conflicts(wednesday) == []  # Wednesday's occurrence was skipped


def test_a_team_scoped_freeze_covers_the_teams_services(planned, make_freeze, team):
    make_freeze(at(1, 0).replace(tzinfo=None), at(1, 23).replace(tzinfo=None), teams=[team])

    assert kinds(change_conflicts(planned)) == ["freeze"]


def test_approvers_all_off_work_conflict(planned, approver, second_approver):
    for person in (approver, second_approver):
        person.time_zone = "Asia/Tokyo"  # 10:00-12:00 UTC is 19:00-21:00 in Tokyo
        person.save(update_fields=["time_zone"])

    (conflict,) = change_conflicts(planned)

    assert conflict.kind == "approvers"
    assert conflict.message == (
        "None of payments-api's approvers is available in the window: "
        "Alice works 09:00-17:00 Asia/Tokyo, weekdays; Bob works 09:00-17:00 Asia/Tokyo, weekdays"
    )


def test_one_approver_at_work_is_enough(planned, approver):
    approver.time_zone = "Asia/Tokyo"
    approver.save(update_fields=["time_zone"])

    assert change_conflicts(planned) == []


def test_a_weekend_window_finds_nobody_at_work(make_change, service, staffed):
    saturday = make_change([service], at(5, 10), at(5, 12))

    assert kinds(change_conflicts(saturday)) == ["approvers"]


def test_approvers_all_delegated_away_conflict(
    planned, approver, second_approver, cab_member, administrator
):
    for person in (approver, second_approver):
        delegate_away(person, cab_member, at(0, 0), at(3, 0))

    (conflict,) = change_conflicts(planned)

    assert conflict.kind == "approvers"
    assert "Alice has delegated their authority away" in conflict.message
    assert Delegation.objects.count() == 2


def test_a_delegation_not_covering_the_whole_window_leaves_the_approver_available(
    planned, approver, second_approver, cab_member, administrator
):
    for person in (approver, second_approver):
        delegate_away(person, cab_member, at(1, 11), at(3, 0))

    assert change_conflicts(planned) == []


def test_a_service_nobody_may_approve_conflicts(make_change, db):
    lonely = factories.ServiceFactory(slug="lonely")
    change = make_change([lonely], at(1, 10), at(1, 12))

    (conflict,) = change_conflicts(change)

    assert conflict.message == "Nobody holds approval authority on lonely."


def test_window_conflicts_for_a_planned_release_excludes_its_own_change(planned, service):
    services = Service.objects.filter(pk=service.pk)

    assert window_conflicts(services, at(1, 11), None, exclude_change=planned) == []
    assert kinds(window_conflicts(services, at(1, 11), None)) == ["overlap"]


def test_working_hours_are_read_in_the_persons_zone(approver):
    approver.time_zone = "America/New_York"  # 09-17 there is 14-22 UTC in December

    assert at_work_during(approver, at(0, 14), at(0, 15))
    assert not at_work_during(approver, at(0, 12), at(0, 14))
    assert at_work_during(approver, at(5, 0), at(5, 0) + timedelta(days=20))


def test_the_query_count_does_not_depend_on_what_is_found(
    planned,
    make_change,
    make_freeze,
    service,
    other_service,
    team,
    django_assert_num_queries,
):
    service.depends_on.add(other_service)
    make_freeze(at(1, 0).replace(tzinfo=None), at(1, 23).replace(tzinfo=None), teams=[team])
    with django_assert_num_queries(11):
        change_conflicts(planned)
    for hour in range(8, 14):
        make_change([service, other_service], at(1, hour), at(1, hour + 1))
        make_freeze(
            at(1, hour).replace(tzinfo=None),
            at(1, hour + 1).replace(tzinfo=None),
            services=[service],
            teams=[team],
        )

    with django_assert_num_queries(11):
        found = change_conflicts(planned)

    assert kinds(found) == ["overlap", "overlap", "freeze", "freeze", "freeze"]


def test_a_planned_release_reports_its_conflicts_but_not_its_own_change(
    org, low_tier_service, staging, requester, make_change, make_freeze
):
    release, _ = approvals.request_approval(
        data=factories.release_input(low_tier_service, staging), actor=requester
    )
    assert release_conflicts(release) == []  # not planned
    release.planned_at = at(1, 10)
    release.change.planned_start, release.change.planned_end = at(1, 9), at(1, 12)
    release.change.save()
    release.change.services.set([low_tier_service])
    make_freeze(
        at(1, 0).replace(tzinfo=None), at(1, 23).replace(tzinfo=None), services=[low_tier_service]
    )

    assert kinds(release_conflicts(release)) == ["freeze"]


def test_the_conflicts_partial_lists_each_conflict(planned, make_change, service):
    make_change([service], at(1, 11), at(1, 13), title="Database upgrade")

    html = render_to_string(
        "changes/calendar/partials/_conflicts.html", {"conflicts": change_conflicts(planned)}
    )

    assert 'data-kind="overlap"' in html
    assert "Database upgrade is planned from 2026-12-08 11:00 UTC on payments-api too." in html
    assert not render_to_string(
        "changes/calendar/partials/_conflicts.html", {"conflicts": []}
    ).strip()

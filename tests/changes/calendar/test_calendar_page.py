"""The calendar page: who may open it, what each person sees, month and week views, filters,
the viewer's time zone, conflicts marked, and a query count that does not grow with entries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals import services as approvals
from governance.models import LedgerEntry, Role
from tests import factories
from tests.changes.calendar.conftest import at

URL = "/changes/calendar/"
WEEK = f"{URL}?view=week&date=2026-12-07"
MONTH = f"{URL}?view=month&date=2026-12-07"


@pytest.fixture
def planned(make_change, service, other_service):
    """A change on payments-api (alice approves it) and one on billing (she does not)."""
    mine = make_change([service], at(1, 13), at(1, 15), title="Rotate keys", time_zone="UTC")
    theirs = make_change([other_service], at(2, 9), at(2, 10), title="Billing schema")
    return mine, theirs


def titles(response) -> set[str]:
    return {s.entry.title for s in response.context["shown"]}


def test_anonymous_visitors_are_sent_to_sign_in(client, planned):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_someone_who_may_view_no_service_is_refused(client, outsider, planned):
    client.force_login(outsider)
    ledger = LedgerEntry.objects.count()

    response = client.get(URL)

    assert response.status_code == 403
    assert b"Rotate keys" not in response.content
    assert LedgerEntry.objects.count() == ledger


def test_an_approver_sees_the_services_they_may_view_only(client, approver, planned):
    client.force_login(approver)

    response = client.get(MONTH)

    assert response.status_code == 200
    assert titles(response) == {"CHG0000001 Rotate keys"}
    assert b"Billing schema" not in response.content


@pytest.mark.parametrize("persona", ["administrator", "auditor"])
def test_administrators_and_auditors_see_everything(client, request, persona, planned):
    client.force_login(request.getfixturevalue(persona))

    response = client.get(MONTH)

    assert titles(response) == {"CHG0000001 Rotate keys", "CHG0000002 Billing schema"}


def test_an_approver_cannot_filter_their_way_to_a_service_they_cannot_see(
    client, approver, planned
):
    client.force_login(approver)

    response = client.get(f"{MONTH}&service=billing")

    assert response.status_code == 400
    assert b"Billing schema" not in response.content


def test_the_service_filter_narrows_the_entries(client, administrator, planned):
    client.force_login(administrator)

    response = client.get(f"{MONTH}&service=billing")

    assert titles(response) == {"CHG0000002 Billing schema"}


def test_the_team_filter_keeps_the_teams_services(client, administrator, planned, make_change, db):
    other_team = factories.TeamFactory(slug="search", name="Search")
    search = factories.ServiceFactory(slug="search-api", team=other_team)
    make_change([search], at(3, 9), at(3, 10), title="Reindex")
    client.force_login(administrator)

    response = client.get(f"{MONTH}&team=search")

    assert titles(response) == {"CHG0000003 Reindex"}


def test_a_bad_date_is_a_clear_error(client, approver, planned):
    client.force_login(approver)

    response = client.get(f"{URL}?date=2026-13-45")

    assert response.status_code == 400
    assert b"Enter a valid date" in response.content


def test_month_view_is_a_grid_of_whole_weeks(client, approver, planned):
    client.force_login(approver)

    response = client.get(MONTH)

    weeks = response.context["weeks"]
    assert [len(week) for week in weeks] == [7] * len(weeks)
    assert weeks[0][0].day.isoformat() == "2026-11-30"  # the Monday before 1 December
    assert weeks[-1][-1].day.isoformat() == "2027-01-03"
    assert response.context["links"]["previous"] == "?view=month&date=2026-11-01"
    assert response.context["links"]["next"] == "?view=month&date=2027-01-01"


def test_week_view_has_the_seven_days_as_columns(client, approver, planned):
    client.force_login(approver)

    response = client.get(WEEK)

    (week,) = response.context["weeks"]
    assert [d.day.isoformat() for d in week][0::6] == ["2026-12-07", "2026-12-13"]
    tuesday = week[1]
    assert [i.shown.entry.title for i in tuesday.items] == ["CHG0000001 Rotate keys"]
    assert response.context["links"]["next"] == "?view=week&date=2026-12-14"


def test_navigation_links_keep_the_filters(client, administrator, planned):
    client.force_login(administrator)

    response = client.get(f"{WEEK}&service=billing")

    assert response.context["links"]["previous"] == "?view=week&date=2026-11-30&service=billing"


def test_times_are_shown_in_the_viewers_zone_with_the_zone_named(client, approver, planned):
    approver.time_zone = "America/New_York"
    approver.save(update_fields=["time_zone"])
    client.force_login(approver)

    response = client.get(WEEK)

    (shown,) = response.context["shown"]
    assert shown.when == "2026-12-08 08:00 → 10:00 America/New_York"
    assert b"America/New_York" in response.content


def test_recurring_freezes_are_expanded_on_the_page(client, administrator, make_freeze, service):
    start = at(0, 18).replace(tzinfo=None)
    make_freeze(
        start, start + timedelta(hours=12), recurrence="FREQ=DAILY;COUNT=3", services=[service]
    )
    client.force_login(administrator)

    response = client.get(WEEK)

    freezes = [s for s in response.context["shown"] if s.entry.kind == "freeze"]
    assert len(freezes) == 3
    assert len({s.entry.uid for s in freezes}) == 3


def test_planned_releases_and_vendor_releases_appear(
    client, org, administrator, vendor_service, staging, requester
):
    factories.grant(requester, Role.RELEASE_MANAGER, vendor_service)
    release, _ = approvals.request_approval(
        data=factories.release_input(vendor_service, staging), actor=requester
    )
    release.planned_at = at(2, 12)
    release.save(update_fields=["planned_at"])
    client.force_login(administrator)

    response = client.get(WEEK)

    (shown,) = [s for s in response.context["shown"] if s.entry.uid == f"release-{release.pk}"]
    assert shown.entry.kind == "vendor release"
    assert shown.entry.url == f"/approvals/releases/{release.pk}/"
    assert shown.entry.status == "TENTATIVE"


def test_conflicts_are_marked_and_listed(client, approver, service, planned, make_change):
    clash = make_change([service], at(1, 14), at(1, 16), title="Database upgrade")
    client.force_login(approver)

    response = client.get(WEEK)

    conflicted = {s.entry.title for s in response.context["conflicted"]}
    assert conflicted == {"CHG0000001 Rotate keys", f"{clash.ref} Database upgrade"}
    assert b"has-conflict" in response.content
    assert b'data-testid="conflict-item"' in response.content


def test_the_query_count_does_not_grow_with_entries(
    client, administrator, service, other_service, make_change, make_freeze
):
    make_freeze(at(0, 1).replace(tzinfo=None), at(0, 2).replace(tzinfo=None))
    make_change([service], at(1, 9), at(1, 10))
    client.force_login(administrator)
    client.get(WEEK)  # warm the session and permission caches

    with CaptureQueriesContext(connection) as one:
        client.get(WEEK)
    for day in range(5):
        make_change([service, other_service], at(day, 11), at(day, 13))
        make_freeze(at(day, 3).replace(tzinfo=None), at(day, 4).replace(tzinfo=None))
    with CaptureQueriesContext(connection) as many:
        response = client.get(WEEK)

    assert len(response.context["shown"]) == 12
    assert len(many) == len(one)


def test_a_conflicting_change_the_viewer_may_not_see_is_not_named(
    client, approver, service, other_service, planned, make_change
):
    service.depends_on.add(other_service)
    make_change([other_service], at(1, 14), at(1, 16), title="Secret migration")
    client.force_login(approver)

    response = client.get(WEEK)

    (item,) = response.context["conflicted"]
    messages = [c.message for c in item.conflicts if c.kind == "overlap"]
    assert messages == [
        "Another change, on a service you may not see, is planned at the same time."
    ]
    assert b"Secret migration" not in response.content


def test_freezes_link_to_their_page_for_administrators_only(
    client, approver, administrator, make_freeze, service
):
    freeze = make_freeze(at(1, 0).replace(tzinfo=None), at(1, 5).replace(tzinfo=None))
    link = f'href="/changes/freezes/{freeze.pk}/"'.encode()

    client.force_login(approver)
    assert link not in client.get(WEEK).content
    client.force_login(administrator)
    assert link in client.get(WEEK).content


@pytest.mark.parametrize(
    ("persona", "status", "titles_seen"),
    [
        ("outsider", 403, set()),  # signed in, no role anywhere
        ("other_service_approver", 200, {"CHG0000002 Billing schema"}),  # out of payments' scope
        ("approver", 200, {"CHG0000001 Rotate keys"}),
        ("requester", 200, {"CHG0000001 Rotate keys"}),
        ("cab_member", 200, {"CHG0000001 Rotate keys", "CHG0000002 Billing schema"}),
        ("auditor", 200, {"CHG0000001 Rotate keys", "CHG0000002 Billing schema"}),
    ],
)
def test_calendar_permission_matrix(client, request, planned, persona, status, titles_seen):
    client.force_login(request.getfixturevalue(persona))

    response = client.get(MONTH)

    assert response.status_code == status
    assert (titles(response) if status == 200 else set()) == titles_seen

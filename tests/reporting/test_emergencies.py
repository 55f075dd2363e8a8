"""Emergency bypass frequency: counts per service and team over time, for the CAB and
administrators, as a page with a trend chart and as CSV."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta
from django.utils import timezone

from approvals.emergencies.models import EmergencyException
from changes.models import ChangeRecord
from governance.models import Role, RoleAssignment
from tests import factories

pytestmark = pytest.mark.django_db
URL = "/reports/emergencies/"
CSV_URL = "/reports/emergencies.csv"
_refs = itertools.count(1)


def declare(service, at: datetime) -> EmergencyException:
    """An emergency declared on `service` at `at`, written as rows (declaring is tested with the
    emergency path)."""
    author = factories.UserFactory(username="oncall")
    change = ChangeRecord.objects.create(
        ref=f"CHG-E{next(_refs):04d}", type="emergency", title="Hotfix", author=author
    )
    return EmergencyException.objects.create(
        change=change,
        service=service,
        declared_by=author,
        justification="Checkout is down.",
        outage="500s on checkout.",
        starts_at=at,
        ends_at=at + timedelta(hours=4),
    )


def at(day: str, clock: str = "12:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)


@pytest.fixture
def identity_team(db):
    return factories.TeamFactory(slug="identity", name="Identity")


@pytest.fixture
def sso(identity_team):
    return factories.ServiceFactory(slug="sso", name="SSO", team=identity_team)


@pytest.fixture
def history(service, low_tier_service, sso):
    """Payments (payments-api, web-frontend) and Identity (sso) over September to November."""
    for day in ("2026-09-03", "2026-09-20", "2026-10-05", "2026-11-11", "2026-11-12"):
        declare(service, at(day))
    declare(low_tier_service, at("2026-10-30"))
    declare(sso, at("2026-09-30", "23:59"))
    declare(sso, at("2026-10-01", "00:00"))
    declare(service, at("2026-08-31", "23:59"))  # before the period
    declare(service, at("2026-12-01", "00:00"))  # after it


PERIOD = {"start": "2026-09-01", "end": "2026-11-30"}


def sign_in(client, user):
    client.force_login(user)
    return client


# --- Who may see it -------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client):
    for url in (URL, CSV_URL, f"{URL}?format=csv"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("persona", ["outsider", "approver", "auditor", "requester"])
def test_people_without_cab_or_administrator_authority_are_refused(
    client, history, request, persona
):
    sign_in(client, request.getfixturevalue(persona))
    for url in (URL, CSV_URL, f"{URL}?format=csv"):
        response = client.get(url)
        assert response.status_code == 403
        assert b"payments-api" not in response.content


def test_an_expired_cab_grant_no_longer_opens_it(client, cab_member):
    RoleAssignment.objects.filter(user=cab_member).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert sign_in(client, cab_member).get(URL).status_code == 403


@pytest.mark.parametrize("persona", ["cab_member", "administrator", "staff", "team_cab_member"])
def test_cab_members_anywhere_and_administrators_see_every_service(
    client, history, request, persona, team
):
    if persona == "staff":
        user = factories.UserFactory(username="ops", is_staff=True)
    elif persona == "team_cab_member":
        user = factories.UserFactory(username="tim")
        factories.grant_scoped(user, Role.CAB_MEMBER, team=team)
    else:
        user = request.getfixturevalue(persona)
    response = sign_in(client, user).get(URL, PERIOD)
    assert response.status_code == 200
    assert [row["name"] for row in response.context["page"].object_list] == [
        "payments-api",
        "SSO",
        "web-frontend",
    ]


# --- The numbers ----------------------------------------------------------------------------


def test_counts_per_month_service_and_team(client, history, cab_member):
    response = sign_in(client, cab_member).get(URL, PERIOD)
    numbers = response.context["numbers"]

    assert [b.isoformat() for b in numbers.buckets] == ["2026-09-01", "2026-10-01", "2026-11-01"]
    assert numbers.per_bucket == [3, 3, 2] and numbers.total == 8
    assert [(s["name"], s["team"], s["count"], s["last"]) for s in numbers.services] == [
        ("payments-api", "Payments", 5, at("2026-11-12")),
        ("SSO", "Identity", 2, at("2026-10-01", "00:00")),
        ("web-frontend", "Payments", 1, at("2026-10-30")),
    ]
    assert [(t["name"], t["count"], t["per_bucket"]) for t in numbers.teams] == [
        ("Payments", 6, [2, 2, 2]),
        ("Identity", 2, [1, 1, 0]),
    ]
    page = response.content.decode()
    assert 'data-testid="total">8<' in page


def test_weeks_start_on_monday(client, sso, cab_member):
    declare(sso, at("2026-11-08", "23:59"))  # a Sunday
    declare(sso, at("2026-11-09", "00:00"))  # the Monday after
    declare(sso, at("2026-11-10"))
    response = sign_in(client, cab_member).get(
        URL, {"by": "week", "start": "2026-11-04", "end": "2026-11-17"}
    )
    numbers = response.context["numbers"]
    assert [b.isoformat() for b in numbers.buckets] == ["2026-11-02", "2026-11-09", "2026-11-16"]
    assert numbers.per_bucket == [1, 2, 0]
    assert [p["label"] for p in response.context["trend"]] == [
        "w/c 2 Nov 2026",
        "w/c 9 Nov 2026",
        "w/c 16 Nov 2026",
    ]


def test_filters_by_service_and_by_team(client, history, cab_member):
    sign_in(client, cab_member)
    by_service = client.get(URL, {**PERIOD, "service": "sso"}).context["numbers"]
    assert (by_service.per_bucket, [s["name"] for s in by_service.services]) == ([1, 1, 0], ["SSO"])

    by_team = client.get(URL, {**PERIOD, "team": "payments"}).context["numbers"]
    assert by_team.per_bucket == [2, 2, 2]
    assert [s["name"] for s in by_team.services] == ["payments-api", "web-frontend"]


def test_the_default_period_is_the_last_six_months_by_month(client, sso, cab_member):
    now = timezone.now()
    declare(sso, now - timedelta(days=10))
    declare(sso, now - timedelta(days=150))
    declare(sso, now - timedelta(days=200))  # older than six months
    numbers = sign_in(client, cab_member).get(URL).context["numbers"]
    today = timezone.localdate()
    assert numbers.by == "month" and len(numbers.buckets) == 7  # six months back, and this one
    assert numbers.buckets[0] == (today - relativedelta(months=6)).replace(day=1)
    assert numbers.buckets[-1] == today.replace(day=1)
    assert numbers.total == 2


# --- CSV ------------------------------------------------------------------------------------


def test_csv_has_the_same_numbers_one_line_per_period_and_service(client, history, cab_member):
    response = sign_in(client, cab_member).get(CSV_URL, PERIOD)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == (
        'attachment; filename="emergency-frequency-20260901-20261130-by-month.csv"'
    )
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["period", "period_start", "team", "team_slug", "service", "service_slug", "emergencies"],
        ["month", "2026-09-01", "Payments", "payments", "payments-api", "payments-api", "2"],
        ["month", "2026-09-01", "Identity", "identity", "SSO", "sso", "1"],
        ["month", "2026-10-01", "Payments", "payments", "payments-api", "payments-api", "1"],
        ["month", "2026-10-01", "Identity", "identity", "SSO", "sso", "1"],
        ["month", "2026-10-01", "Payments", "payments", "web-frontend", "web-frontend", "1"],
        ["month", "2026-11-01", "Payments", "payments", "payments-api", "payments-api", "2"],
    ]
    same = client.get(URL, {**PERIOD, "format": "csv"})
    assert same.content == response.content


def test_the_page_links_to_the_csv_with_its_filters(client, history, cab_member):
    page = sign_in(client, cab_member).get(URL, {**PERIOD, "team": "identity"}).content.decode()
    assert (
        'href="/reports/emergencies.csv?start=2026-09-01&amp;end=2026-11-30&amp;team=identity"'
        in page
    )


# --- Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"start": "2026-11-30", "end": "2026-09-01"},
            "The period must start on or before its end.",
        ),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "Choose a period of at most three years."),
        ({"start": "yesterday"}, "Enter a valid date."),
        ({"by": "decade"}, "Select a valid choice. decade is not one of the available choices."),
        ({"service": "no-such-service"}, "Select a valid choice."),
    ],
)
def test_bad_filters_are_answered_with_a_clear_error(client, history, cab_member, query, message):
    sign_in(client, cab_member)
    page = client.get(URL, query)
    assert page.status_code == 400
    assert message in page.content.decode()
    assert "numbers" not in page.context

    as_csv = client.get(CSV_URL, query)
    assert as_csv.status_code == 400 and as_csv["Content-Type"] == "text/plain"
    assert message in as_csv.content.decode()


# --- The chart, pages and queries -------------------------------------------------------------


def test_the_trend_chart_is_an_accessible_svg_with_one_bar_per_month(client, history, cab_member):
    response = sign_in(client, cab_member).get(URL, PERIOD)
    page = response.content.decode()
    assert page.count('data-testid="trend-bar"') == 3
    assert '<title id="trend-title">Emergencies declared per month</title>' in page
    described = "8 emergencies declared over 3 months; the most, 3, in Sep 2026."
    assert f'<desc id="trend-desc">{described}</desc>' in page
    assert "<title>Nov 2026: 2 emergencies</title>" in page
    bars = response.context["chart"]["bars"]
    # Equal counts, equal heights; the tallest bar is in proportion to the axis.
    assert bars[0].height == bars[1].height > bars[2].height > 0
    assert [t["value"] for t in response.context["chart"]["ticks"]] == [0, 1, 2, 3, 4]


def test_an_empty_period_says_so(client, cab_member):
    page = sign_in(client, cab_member).get(URL, PERIOD).content.decode()
    assert "No emergencies declared in this period." in page
    assert '<desc id="trend-desc">No emergencies were declared in this period.</desc>' in page


def test_services_are_paginated(client, cab_member, team):
    for n in range(51):
        declare(factories.ServiceFactory(slug=f"svc-{n:02d}", team=team), at("2026-10-10"))
    sign_in(client, cab_member)
    first = client.get(URL, PERIOD).context["page"]
    second = client.get(URL, {**PERIOD, "page": 2}).context["page"]
    assert len(first.object_list) == 50 and [s["name"] for s in second.object_list] == ["svc-50"]


def test_the_query_count_does_not_grow_with_the_rows(
    client, cab_member, team, django_assert_max_num_queries
):
    sign_in(client, cab_member).get(URL)  # the first request after signing in saves its session
    declare(factories.ServiceFactory(slug="one", team=team), at("2026-10-10"))
    with django_assert_max_num_queries(100) as one:
        client.get(URL, PERIOD)
    for n in range(30):
        other = factories.TeamFactory(slug=f"t{n}", name=f"T{n}")
        declare(factories.ServiceFactory(slug=f"s{n}", team=other), at(f"2026-09-{n % 28 + 1:02d}"))
    with django_assert_max_num_queries(100) as many:
        response = client.get(URL, {**PERIOD, "by": "week"})
    assert response.context["numbers"].total == 31
    # Session, user, the administrator and CAB checks, the counts, the menu's auditor check,
    # the service and team choices.
    assert len(many.captured_queries) == len(one.captured_queries) == 8

"""Who may open each metrics page, what a scoped release manager sees, bad filters, and the
pages' query counts."""

from __future__ import annotations

import pytest

from governance.models import Role
from reporting.metrics.rollups import refresh_metrics
from tests import factories
from tests.reporting.metrics import history

RELEASES = "/metrics/releases/"
CAB = "/metrics/cab/"
ADMINISTRATION = "/metrics/administration/"
PAGES = (RELEASES, CAB, ADMINISTRATION)


@pytest.fixture
def known(org, production, staging, requester, approver, second_approver) -> history.History:
    made = history.build(production, staging, requester, approver, second_approver)
    refresh_metrics()
    return made


@pytest.fixture
def security_approver(db):
    user = factories.UserFactory(username="sam")
    factories.grant(user, Role.SECURITY_APPROVER)
    return user


# (persona fixture, status of releases, CAB, administration pages)
MATRIX = [
    ("approver", 403, 403, 403),
    ("security_approver", 403, 403, 403),
    ("outsider", 403, 403, 403),
    ("requester", 200, 403, 403),  # a release manager
    ("cab_member", 403, 200, 403),
    ("auditor", 200, 200, 200),
    ("administrator", 200, 200, 200),
]


@pytest.mark.parametrize(("persona", "releases", "cab", "administration"), MATRIX)
def test_each_persona_opens_only_its_pages(
    request, client, known, persona, releases, cab, administration
):
    client.force_login(request.getfixturevalue(persona))
    for url, status in zip(PAGES, (releases, cab, administration), strict=True):
        page = client.get(url, history.PERIOD)
        as_csv = client.get(url, {**history.PERIOD, "format": "csv", "chart": "abandonment"})
        assert page.status_code == status, url
        if status == 403:
            # Nothing of the numbers leaks through a refusal, page or CSV.
            assert as_csv.status_code == 403
            for body in (page.content.decode(), as_csv.content.decode()):
                assert "Service owners" not in body and "Superseded" not in body


@pytest.mark.parametrize(
    ("persona", "location"),
    [
        ("requester", RELEASES),
        ("cab_member", CAB),
        ("administrator", RELEASES),
        ("auditor", RELEASES),
    ],
)
def test_the_metrics_link_leads_to_the_first_page_open_to_each_persona(
    request, client, db, persona, location
):
    client.force_login(request.getfixturevalue(persona))
    response = client.get("/metrics/")
    assert response.status_code == 302 and response["Location"] == location


def test_the_metrics_link_is_refused_to_those_with_no_metrics_page(client, approver):
    client.force_login(approver)
    assert client.get("/metrics/").status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client, known):
    for url in PAGES:
        response = client.get(url, {**history.PERIOD, "format": "csv", "chart": "sla"})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_release_manager_sees_only_the_services_in_their_scope(client, known, requester):
    client.force_login(requester)  # release manager of payments-api (and web-frontend) only
    response = client.get(RELEASES, {**history.PERIOD, "by": "service"})
    panel = next(p for p in response.context["panels"] if p.name == "time_to_approve")
    # Payments: R1 2, R2 6, R3 0.5 → mean 2.83, p50 2, p90 5.2; search's releases are not theirs.
    assert panel.rows == [["payments-api", "3", "2.83", "2.00", "5.20"]]
    page = response.content.decode()
    assert "search" not in page and "Discovery" not in page.split('id="id_team"')[0]
    # Withdrawn R7 and expired R8 of 6 payments requests closed; never decided R11 is search's.
    abandonment = next(p for p in response.context["panels"] if p.name == "abandonment")
    assert abandonment.stats == [
        ("Requests", "6"),
        ("Abandoned", "2"),
        ("Abandonment rate (%)", "33.3"),
    ]
    # Asking for another service by name is a form error, not its numbers.
    refused = client.get(RELEASES, {**history.PERIOD, "service": "search"})
    assert refused.status_code == 400 and "Select a valid choice" in refused.content.decode()
    as_csv = client.get(
        RELEASES, {**history.PERIOD, "service": "search", "format": "csv", "chart": "abandonment"}
    )
    assert as_csv.status_code == 400 and "service: Select a valid choice" in as_csv.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"start": "2026-09-30", "end": "2026-07-01"},
            "The period must start on or before its end.",
        ),
        ({"start": "2020-01-01", "end": "2026-07-01"}, "Choose a period of at most three years."),
        ({"end": "yesterday"}, "Enter a valid date."),
        ({"by": "mood"}, "Select a valid choice."),
        ({"environment": "moon"}, "Select a valid choice."),
    ],
)
def test_bad_filters_answer_400_with_the_reason(client, known, administrator, query, message):
    client.force_login(administrator)
    page = client.get(ADMINISTRATION, query)
    assert page.status_code == 400 and message in page.content.decode()
    as_csv = client.get(ADMINISTRATION, {**query, "format": "csv", "chart": "sla"})
    assert as_csv.status_code == 400 and as_csv["Content-Type"] == "text/plain"
    assert message in as_csv.content.decode()


def test_a_csv_of_a_chart_the_page_does_not_have_is_refused(client, known, requester):
    client.force_login(requester)
    response = client.get(RELEASES, {"format": "csv", "chart": "sla"})
    assert response.status_code == 400
    assert response.content.decode() == (
        "chart: choose one of time_to_approve, abandonment, outcomes_by_delay.\n"
    )


# Session and user, the roles and administrator checks, the viewer's scope, the rollups'
# freshness, the menu's own checks, the filters' choices, then a fixed number per panel (one
# more where approvers are named).
@pytest.mark.parametrize(("url", "queries"), [(RELEASES, 15), (CAB, 19), (ADMINISTRATION, 24)])
def test_the_query_count_does_not_grow_with_the_history(
    client, known, administrator, django_assert_num_queries, url, queries
):
    client.force_login(administrator)
    client.get(url)  # the first request after signing in saves its session
    one_release = {"start": "2026-07-06", "end": "2026-07-06", "by": "approver"}  # R1 alone
    with django_assert_num_queries(queries):
        assert client.get(url, one_release).status_code == 200
    with django_assert_num_queries(queries):
        assert client.get(url, {**history.PERIOD, "by": "approver"}).status_code == 200

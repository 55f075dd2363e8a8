"""A CAB member reads how often each team bypasses the normal path: the trend, the numbers,
narrowed to one team by week, and the CSV behind it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in
from tests.reporting.test_emergencies import declare

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Days ago of each declaration, per service: payments-api is the frequent offender lately.
HISTORY = {
    ("payments", "Payments", "payments-api"): [3, 9, 12, 20, 41, 44, 70, 130, 160],
    ("payments", "Payments", "web-frontend"): [15, 62, 101],
    ("identity", "Identity", "sso"): [5, 33, 95, 96, 150],
    ("search", "Search", "search-api"): [28, 120],
}


def test_a_cab_member_reads_the_bypass_frequency_and_narrows_it_to_a_team(
    page: Page, live_server, cab_member
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    now = timezone.now()
    for (team_slug, team_name, slug), days in HISTORY.items():
        team = factories.TeamFactory(slug=team_slug, name=team_name)
        service = factories.ServiceFactory(slug=slug, team=team)
        for day in days:
            declare(service, now - timedelta(days=day, hours=2))

    sign_in(page, base, "carol")
    page.goto(f"{base}/reports/emergencies/")
    expect(page.get_by_role("heading", name="Emergency bypass frequency")).to_be_visible()
    expect(page.get_by_test_id("total")).to_have_text("19")
    expect(page.get_by_test_id("trend-bar")).to_have_count(7)
    expect(page.get_by_role("img", name="Emergencies declared per month")).to_be_visible()
    expect(page.get_by_test_id("service-row").first).to_contain_text("payments-api")
    expect(page.get_by_test_id("team-row").first).to_contain_text("Payments")
    page.screenshot(path=SCREENSHOTS / "emergency-frequency.png", full_page=True)

    page.select_option("#id_by", value="week")
    page.select_option("#id_team", label="Identity")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("total")).to_have_text("5")
    expect(page.get_by_test_id("service-row")).to_have_count(1)
    page.get_by_text("The numbers behind the chart").click()
    expect(page.get_by_test_id("trend-table")).to_contain_text("w/c")
    page.screenshot(path=SCREENSHOTS / "emergency-frequency-weekly.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_test_id("csv-link").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "period,period_start,team,team_slug,service,service_slug,emergencies"
    assert {line.split(",")[4] for line in lines[1:]} == {"sso"}
    assert sum(int(line.split(",")[-1]) for line in lines[1:]) == 5

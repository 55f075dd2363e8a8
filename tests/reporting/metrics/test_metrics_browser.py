"""An administrator reads the metrics in Chromium: charts drawn, numbers behind them, a filter
that changes them, the other audiences' pages, and a chart's CSV downloaded."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from reporting.metrics.rollups import refresh_metrics
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in
from tests.reporting.metrics import history

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_administrator_reads_the_metrics_filters_them_and_downloads_a_chart(
    page: Page,
    live_server,
    org,
    production,
    staging,
    requester,
    approver,
    second_approver,
    administrator,
):
    history.build(production, staging, requester, approver, second_approver)
    refresh_metrics()
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, base, "ada")
    page.goto(f"{base}/metrics/administration/?start=2026-07-01&end=2026-09-30&by=team")
    expect(page.get_by_role("heading", name="Approval metrics")).to_be_visible()
    for name in ("time_to_approve", "sla", "abandonment", "outcomes_by_delay", "exceptions"):
        expect(
            page.get_by_test_id(f"chart-{name}").locator("rect[data-testid=bar]")
        ).not_to_have_count(0)
    # Two teams, two bars each (p50 and p90), with their values as tooltips.
    bars = page.get_by_test_id("chart-time_to_approve").locator("rect[data-testid=bar]")
    expect(bars).to_have_count(4)
    expect(bars.first.locator("title")).to_have_text("Discovery, p50: 30.0 h")
    panel = page.get_by_test_id("panel-time_to_approve")
    panel.get_by_text("The numbers behind the chart").click()
    expect(page.get_by_test_id("table-time_to_approve")).to_contain_text("Payments")
    page.screenshot(path=SCREENSHOTS / "metrics-administration-test.png", full_page=True)

    page.select_option("#id_team", label="Payments")
    page.get_by_role("button", name="Show").click()
    expect(bars).to_have_count(2)
    expect(bars.first.locator("title")).to_have_text("Payments, p50: 2.0 h")

    with page.expect_download() as download:
        page.get_by_test_id("csv-abandonment").click()
    rows = list(csv.reader(Path(download.value.path()).read_text().splitlines()))
    # Payments: withdrawn R7 and expired R8 of its six closed requests.
    assert rows == [
        ["Reason", "Requests", "Share of requests (%)"],
        ["Superseded by a new request", "0", "0.0"],
        ["Withdrawn", "1", "16.7"],
        ["Expired", "1", "16.7"],
        ["Never decided", "0", "0.0"],
    ]

    page.get_by_test_id("metrics-pages").get_by_role("link", name="CAB metrics").click()
    expect(page.get_by_role("heading", name="CAB metrics")).to_be_visible()
    expect(page.locator("#id_team")).to_have_value("payments")  # the filters go along
    expect(page.get_by_test_id("chart-sla").locator("rect[data-testid=bar]")).to_have_count(2)
    page.get_by_test_id("metrics-pages").get_by_role("link", name="Release metrics").click()
    expect(page.get_by_test_id("chart-outcomes_by_delay")).to_be_visible()

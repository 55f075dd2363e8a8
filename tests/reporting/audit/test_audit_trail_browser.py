"""An auditor follows a release from the audit trail: filters by service, pages older and
newer, opens the release and downloads its evidence pack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from approvals import services
from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_reads_the_trail_of_a_service_and_takes_the_evidence_pack(
    page: Page, live_server, settings, production_release, approver, staging, pipeline_bot
):
    settings.SIGNOFF_AUDIT_PAGE_SIZE = 5
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    factories.decide(production_release, approver, rationale="Diff and tests checked.")
    for _ in range(3):
        services.request_approval(
            data=factories.release_input(production_release.service, staging), actor=pipeline_bot
        )

    sign_in(page, base, "erin")
    page.goto(f"{base}/reports/audit/")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    page.select_option("#id_service", value="payments-api")
    page.select_option("#id_kind", value="decision.recorded")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("trail-row")).to_have_count(1)
    expect(page.get_by_test_id("trail-row")).to_contain_text("Diff and tests checked.")
    page.screenshot(path=SCREENSHOTS / "audit-trail-filtered.png", full_page=True)

    page.select_option("#id_kind", value="")
    page.get_by_role("button", name="Show").click()
    first = page.get_by_test_id("trail-row").first.get_attribute("data-ref")
    page.get_by_test_id("older").click()
    expect(page.get_by_test_id("newer")).to_be_visible()
    expect(page.get_by_test_id("trail-row").first).not_to_have_attribute("data-ref", first)
    page.screenshot(path=SCREENSHOTS / "audit-trail-older.png", full_page=True)
    page.get_by_test_id("newer").click()
    expect(page.get_by_test_id("trail-row").first).to_have_attribute("data-ref", first)

    page.goto(f"{base}/reports/audit/?kind=decision.recorded")
    page.get_by_role("link", name=f"release:{production_release.pk}").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Evidence pack (JSON)").click()
    pack = json.loads(Path(download.value.path()).read_text())
    assert pack["release"]["digest"] == production_release.digest
    assert pack["generated_by"] == "erin"

"""Connecting ServiceNow as an administrator does it: issue the token, map the CI, and see the
records ServiceNow pushes."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from changes.records.models import ChangeRecord
from tests.browser.test_accessibility import Scan
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in
from tests.changes.servicenow.conftest import CI, change_request, display_all

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_administrator_connects_servicenow(page: Page, live_server, org, administrator):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    scan = Scan(page, base)  # axe-core on each state of the page
    sign_in(page, base, "ada")

    scan.check("servicenow", "/changes/integrations/servicenow/")
    expect(page.get_by_test_id("token")).to_contain_text("None yet")
    page.get_by_role("button", name="Map CI").click()
    expect(page.locator("#id_mapping-reason")).to_have_attribute("aria-invalid", "true")
    scan.check("servicenow, refused")
    page.fill("#id_token-reason", "Connecting acme.service-now.com")
    page.get_by_role("button", name="Issue a new token").click()
    token = page.get_by_test_id("new-token").locator(".mono").inner_text().strip()
    scan.check("servicenow, new token")

    page.fill("#id_mapping-external_id", CI)
    page.select_option("#id_mapping-service", value="payments-api")
    page.fill("#id_mapping-reason", "Payments CI")
    page.get_by_role("button", name="Map CI").click()
    expect(page.locator("body")).to_contain_text("Saved; the ledger records it.")
    expect(page.get_by_test_id("token")).to_contain_text(f"…{token[-4:]}")
    expect(page.get_by_test_id("new-token")).to_have_count(0)

    request = urllib.request.Request(
        f"{base}/integrations/servicenow/",
        data=json.dumps(
            {"table": "change_request", "record": display_all(change_request())}
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert json.load(response)["status"] == "created"

    page.reload()
    expect(page.locator("body")).to_contain_text("CHG0030001")
    assert ChangeRecord.objects.get().services.get().slug == "payments-api"
    page.screenshot(path=SCREENSHOTS / "servicenow.png", full_page=True)
    scan.assert_clean()

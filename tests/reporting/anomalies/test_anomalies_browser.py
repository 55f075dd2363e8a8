"""A security approver opens the alerts page, reads the evidence and acknowledges an alert."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from governance.models import LedgerEntry, Role
from reporting.anomalies.services import raise_alerts
from tests import factories

# Debian's Chromium, as every browser test launches it (fixtures of tests/browser/).
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in
from tests.reporting.anomalies.history import person
from tests.reporting.anomalies.test_alerts import finding_about

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_security_approver_acknowledges_an_alert_with_a_note(page: Page, live_server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sam = factories.UserFactory(username="sam", first_name="Sam")
    factories.grant(sam, Role.SECURITY_APPROVER)
    [alert] = raise_alerts([finding_about(person("quentin"))])
    release_id = alert.evidence["decisions"][0]["release_id"]

    sign_in(page, live_server.url, "sam")
    page.goto(f"{live_server.url}/anomalies/")
    card = page.locator(f"#anomaly-{alert.pk}")
    expect(card.get_by_test_id("kind")).to_have_text("Far outside usual hours")
    expect(card.get_by_test_id("summary")).to_have_text("quentin approved at 03:00.")
    expect(card.get_by_test_id("evidence-row").get_by_role("link")).to_have_attribute(
        "href", f"/approvals/releases/{release_id}/"
    )
    page.screenshot(path=SCREENSHOTS / "anomalies-open.png", full_page=True)

    # The note is required: the browser itself refuses an empty one.
    card.get_by_role("button", name="Acknowledge").click()
    alert.refresh_from_db()
    assert alert.status == "open"

    card.get_by_label("Note").fill("Quentin was on call for the payments incident.")
    card.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Acknowledged: quentin approved at 03:00.")).to_be_visible()
    expect(page.get_by_test_id("no-alerts")).to_be_visible()

    page.get_by_label("Status").select_option("acknowledged")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("acknowledgement")).to_contain_text("Acknowledged by sam on")
    expect(page.get_by_test_id("acknowledgement")).to_contain_text(
        "Quentin was on call for the payments incident."
    )
    page.screenshot(path=SCREENSHOTS / "anomalies-acknowledged.png", full_page=True)
    entry = LedgerEntry.objects.get(kind="anomaly.acknowledged")
    assert (entry.actor, entry.payload["note"]) == (
        "sam",
        "Quentin was on call for the payments incident.",
    )

"""The emergency path as a release manager uses it: declare (a bad declaration refused first),
see the exception, then the emergency release's page with its controls and monitoring badge."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from approvals import services
from approvals.emergencies.models import EmergencyException
from approvals.services.deployments import record_deployment
from governance.models import Role
from tests import factories
from tests.approvals.emergencies.conftest import open_incident
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_declare_an_emergency_and_see_its_release_under_enhanced_monitoring(
    page: Page, live_server, org, service, production, pipeline_bot, approver
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    frank = factories.UserFactory(username="frank", first_name="Frank")
    factories.grant(frank, Role.RELEASE_MANAGER, service)
    incident = open_incident(service, external_id="PD-4711")

    sign_in(page, base, "frank")
    page.goto(f"{base}/approvals/emergencies/")
    page.get_by_role("link", name="Declare an emergency").click()
    page.select_option("#id_service", value="payments-api")
    page.fill("#id_title", "Roll back the card fee rounding")
    page.fill("#id_justification", "Every card payment fails since 09:12; revenue stops.")
    page.fill("#id_hours", "9")
    page.get_by_role("button", name="Declare the emergency").click()
    expect(page.locator("body")).to_contain_text("less than or equal to 4")
    assert EmergencyException.objects.count() == 0

    page.fill("#id_hours", "3")
    page.get_by_role("button", name="Declare the emergency").click()
    expect(page.locator("body")).to_contain_text("Link an open incident")
    assert EmergencyException.objects.count() == 0

    # A fresh form, filled as a person would, for the screenshot.
    page.goto(f"{base}/approvals/emergencies/new/")
    page.select_option("#id_service", value="payments-api")
    page.fill("#id_title", "Roll back the card fee rounding")
    page.fill("#id_justification", "Every card payment fails since 09:12; revenue stops.")
    page.select_option("#id_incident", value=str(incident.pk))
    page.get_by_label("Extra monitoring during and after the deployment").check()
    page.get_by_label("Immediate rollback plan, tested").check()
    page.fill("#id_control_notes", "The payments lead watches the card dashboards.")
    page.fill("#id_hours", "3")
    page.screenshot(path=str(SCREENSHOTS / "emergency-declare.png"), full_page=True)
    page.get_by_role("button", name="Declare the emergency").click()
    expect(page.locator("body")).to_contain_text("Emergency declared")
    expect(page.get_by_test_id("emergency-state")).to_have_text("In force")

    emergency = EmergencyException.objects.get()
    release, _ = services.request_approval(
        data=factories.release_input(
            service,
            production,
            version="2.4.2",
            change_ref=emergency.change.ref,
            change_type="emergency",
            triggered_by="frank",
        ),
        actor=pipeline_bot,
    )
    factories.decide(release, approver)
    record_deployment(release=release, actor=pipeline_bot, status="succeeded")

    page.goto(f"{base}/approvals/releases/{release.pk}/")
    panel = page.get_by_test_id("release-emergency")
    expect(panel).to_contain_text("Immediate rollback plan, tested")
    expect(panel).to_contain_text("Enhanced monitoring")
    expect(panel).to_contain_text("API PD-4711")
    page.screenshot(path=str(SCREENSHOTS / "emergency-release.png"), full_page=True)

    page.get_by_role("link", name="The emergency's page").click()
    expect(page.get_by_test_id("emergency-release")).to_contain_text("approved")
    page.screenshot(path=str(SCREENSHOTS / "emergency-detail.png"), full_page=True)
    page.goto(f"{base}/approvals/emergencies/")
    expect(page.get_by_test_id("emergency-row")).to_contain_text(emergency.change.ref)
    page.screenshot(path=str(SCREENSHOTS / "emergency-list.png"), full_page=True)

    page.goto(f"{base}/approvals/releases/?monitoring=on")
    expect(page.get_by_test_id("enhanced-monitoring")).to_have_count(1)

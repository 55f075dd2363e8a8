"""Freezes as administrators use them: create one on the page (a bad rule refused first), see
the release it holds blocked, ask for an override, and a second administrator confirms it."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from changes.models import Freeze, FreezeOverride
from governance.models import LedgerEntry, Role
from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_a_freeze_and_let_one_release_through_with_two_administrators(
    page: Page, live_server, org, production_release, approver, second_approver, cab_member
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    ada = factories.UserFactory(username="ada", first_name="Ada")
    factories.grant(ada, Role.ADMINISTRATOR)
    gus = factories.UserFactory(username="gus", first_name="Gus")
    factories.grant(gus, Role.ADMINISTRATOR)
    # Wall times in Berlin around now, so the new freeze holds the release at once.
    berlin = timezone.now().astimezone(ZoneInfo("Europe/Berlin"))
    start, end = berlin - timedelta(hours=1), berlin + timedelta(hours=6)

    sign_in(page, base, "ada")
    page.goto(f"{base}/")
    page.get_by_role("button", name="Administration").click()
    page.get_by_role("link", name="Freezes").click()
    expect(page.get_by_role("heading", name="Freezes")).to_be_visible()
    page.get_by_role("link", name="New freeze").click()
    page.fill("#id_name", "Payments hardening")
    page.get_by_label("Hard (only emergencies inside their exception pass)").check()
    page.select_option("#id_time_zone", value="Europe/Berlin")
    page.fill("#id_start", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_end", end.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_recurrence", "FREQ=HOURLY")
    page.get_by_label("Production").check()
    page.fill("#id_reason", "Ledger migration this afternoon")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("body")).to_contain_text("A freeze repeats at most daily")
    assert Freeze.objects.count() == 0

    page.fill("#id_recurrence", "")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("body")).to_contain_text("Freeze 'Payments hardening' saved.")
    expect(page.get_by_test_id("freeze-state")).to_contain_text("in force")
    expect(page.get_by_test_id("freeze-state")).to_contain_text("Europe/Berlin")
    page.get_by_role("link", name="Freezes").first.click()
    expect(page.get_by_test_id("freeze-row")).to_contain_text("Payments hardening")
    page.screenshot(path=SCREENSHOTS / "freezes.png", full_page=True)

    # The approved release is now blocked, naming the freeze; ada asks for an override.
    page.goto(f"{base}/approvals/releases/{production_release.pk}/")
    expect(page.locator("[data-gate-status]")).to_have_attribute("data-gate-status", "blocked")
    expect(page.locator("#gate")).to_contain_text("Hard freeze 'Payments hardening'")
    page.select_option("#id_freeze", label="Payments hardening")
    page.fill("#freezes #id_reason", "Fix for the card-declines incident")
    page.fill("#id_hours", "4")
    page.get_by_role("button", name="Ask for an override").click()
    expect(page.locator("body")).to_contain_text("another administrator must confirm it")
    expect(page.get_by_test_id("release-override")).to_contain_text("awaiting confirmation")
    expect(page.get_by_role("button", name="Confirm override")).to_have_count(0)

    # gus, the second administrator, confirms it from the release page: the gate opens.
    sign_in(page, base, "gus")
    page.goto(f"{base}/approvals/releases/{production_release.pk}/")
    page.get_by_role("button", name="Confirm override").click()
    expect(page.locator("body")).to_contain_text("confirmed")
    expect(page.locator("[data-gate-status]")).to_have_attribute("data-gate-status", "approved")
    expect(page.get_by_test_id("release-override")).to_contain_text("confirmed by gus")
    override = FreezeOverride.objects.get()
    assert (override.requested_by.username, override.confirmed_by.username) == ("ada", "gus")
    assert LedgerEntry.objects.filter(kind__startswith="freeze.").count() == 3

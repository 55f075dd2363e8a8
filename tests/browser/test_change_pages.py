"""Change pages as a release manager uses them: open a change on the page with its window in
Paris, see it on its own page, a pipeline asks for a release naming its ref, and the change
shows the release with its gate and moves to authorise; the release page shows the change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import Page, expect

from changes.models import ChangeRecord
from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PARIS = ZoneInfo("Europe/Paris")
DASH = "\u2013"  # between a window's start and end


def next_tuesday() -> datetime:
    """Midnight UTC of the next Tuesday (a working day for everyone, whatever today is)."""
    now = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return now + timedelta(days=(1 - now.weekday()) % 7 or 7)


@pytest.fixture
def card_vault_change(service):
    """Another change on payments-api, planned in the middle of the new one's window."""
    start = next_tuesday() + timedelta(hours=9, minutes=30)
    change = ChangeRecord.objects.create(
        ref="CHG0060001",
        title="Card vault patch",
        planned_start=start,
        planned_end=start + timedelta(hours=1),
        state=ChangeRecord.State.SCHEDULED,
    )
    change.services.set([service])
    return change


def test_a_release_manager_opens_a_change_and_a_pipeline_release_moves_it_to_authorise(
    page: Page, live_server, org, service, pipeline_bot, card_vault_change
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    day = next_tuesday()
    start = datetime(day.year, day.month, day.day, 10, tzinfo=PARIS)
    end = start + timedelta(hours=2)
    sign_in(page, base, "dave")

    page.goto(f"{base}/changes/")
    page.get_by_role("link", name="New change").click()
    expect(page.get_by_role("heading", name="New change")).to_be_visible()
    page.fill("#id_title", "Move payments to the new ledger")
    page.select_option("#id_risk", value="high")
    page.select_option("#id_services", label="payments-api")
    page.select_option("#id_time_zone", value="Europe/Paris")
    page.fill("#id_planned_start", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_planned_end", end.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_implementation_plan", "Dual-write, backfill, switch reads, stop old writes.")
    page.fill("#id_test_plan", "Reconcile balances for 1,000 sample accounts.")
    page.fill("#id_backout_plan", "Switch reads back; the old ledger keeps every write.")
    page.get_by_role("button", name="Save").click()

    change = ChangeRecord.objects.get(title="Move payments to the new ledger")
    expect(page.locator("body")).to_contain_text(f"Change {change.ref} saved.")
    expect(page.get_by_test_id("change-state")).to_have_text("New")
    utc_start, utc_end = start.astimezone(UTC), end.astimezone(UTC)
    window = page.get_by_test_id("change-window")
    expect(window).to_contain_text(
        f"{start:%Y-%m-%d} 10:00 {DASH} {end:%Y-%m-%d} 12:00 Europe/Paris"
    )
    expect(window).to_contain_text(
        f"({utc_start:%Y-%m-%d %H:%M} {DASH} {utc_end:%Y-%m-%d %H:%M} UTC)"
    )
    expect(page.get_by_test_id("change-conflicts")).to_contain_text(
        "CHG0060001 Card vault patch is planned from"
    )
    expect(page.get_by_test_id("change-releases")).to_contain_text("No release names this change")

    # The pipeline asks for a release of payments-api naming the change.
    token = factories.token_for(pipeline_bot)
    created = requests.post(
        f"{base}/api/v1/releases/",
        json=factories.release_body(
            change={"ref": change.ref, "type": "normal", "title": "Payments API 2.14.0"}
        ),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    release_id = created.json()["id"]

    page.reload()
    releases = page.get_by_test_id("change-releases")
    expect(releases).to_contain_text("payments-api 2.14.0 → Production")
    expect(releases).to_contain_text("Pending")
    expect(page.get_by_test_id("change-state")).to_have_text("Authorise")
    expect(page.get_by_role("listitem").filter(has_text="Authorise").last).to_have_attribute(
        "aria-current", "step"
    )
    history = page.get_by_test_id("change-history")
    expect(history).to_contain_text("change.opened")
    expect(history).to_contain_text("change.state_changed · new → authorise")
    expect(history).to_contain_text("A linked release is waiting for approval.")
    page.screenshot(path=SCREENSHOTS / "change.png", full_page=True)

    # The release page shows its change: the ref back to this page, the state, the conflict.
    releases.get_by_role("link", name="payments-api 2.14.0 → Production").click()
    expect(page).to_have_url(f"{base}/approvals/releases/{release_id}/")
    panel = page.get_by_test_id("release-change")
    expect(panel.get_by_role("link", name=change.ref)).to_have_attribute(
        "href", f"/changes/{change.pk}/"
    )
    expect(page.get_by_test_id("release-change-state")).to_have_text("Authorise")
    expect(page.get_by_test_id("release-change-window")).to_contain_text("10:00")
    expect(page.get_by_test_id("release-change-window")).to_contain_text("Europe/Paris")
    expect(page.get_by_test_id("release-conflicts")).to_contain_text("CHG0060001 Card vault patch")
    expect(page.get_by_test_id("release-incidents")).to_contain_text("No open incident")
    panel.get_by_role("link", name=change.ref).click()
    expect(page).to_have_url(f"{base}/changes/{change.pk}/")

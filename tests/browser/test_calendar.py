"""The change calendar as an approver uses it: the month with its conflicts, the week, a filter,
an entry's page, and the feed URL from the profile subscribed to like a calendar app would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.utils import timezone
from icalendar import Calendar
from playwright.sync_api import Page, expect

from approvals import services as approvals
from changes.freezes.services import FreezeInput, create_freeze
from changes.models import ChangeRecord
from governance.models import Role
from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def next_tuesday() -> datetime:
    """Midnight UTC of the next Tuesday (a working day for everyone, whatever today is)."""
    now = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return now + timedelta(days=(1 - now.weekday()) % 7 or 7)


def today_at(hour: int) -> datetime:
    """An hour of the day the schedule is planned for (UTC)."""
    return next_tuesday() + timedelta(hours=hour)


def plan(ref: str, title: str, services, start: datetime, hours: int, **fields) -> ChangeRecord:
    change = ChangeRecord.objects.create(
        ref=ref,
        title=title,
        planned_start=start,
        planned_end=start + timedelta(hours=hours),
        state=fields.pop("state", ChangeRecord.State.SCHEDULED),
        **fields,
    )
    change.services.set(services)
    return change


@pytest.fixture
def schedule(org, service, low_tier_service, other_service, staging, requester, approver):
    """Next Tuesday: two overlapping payments-api changes, a freeze on web-frontend, a planned
    release of web-frontend, and a billing change alice may not see."""
    plan("CHG0040001", "Rotate card keys", [service], today_at(10), 2)
    plan("CHG0040002", "Ledger index rebuild", [service], today_at(11), 2, state="authorise")
    plan("CHG0040003", "Billing schema", [other_service], today_at(9), 1)
    administrator = factories.UserFactory(username="ada", first_name="Ada")
    factories.grant(administrator, Role.ADMINISTRATOR)
    wall = today_at(14).replace(tzinfo=None)
    create_freeze(
        data=FreezeInput(
            name="Frontend code freeze",
            kind="soft",
            time_zone="UTC",
            local_start=wall,
            local_end=wall + timedelta(hours=3),
            environments=[staging],
            reason="Marketing launch",
            services=[low_tier_service],
        ),
        actor=administrator,
    )
    release, _ = approvals.request_approval(
        data=factories.release_input(low_tier_service, staging, version="3.2.0"), actor=requester
    )
    release.planned_at = today_at(16)
    release.save(update_fields=["planned_at"])
    return release


def test_an_approver_reads_the_calendar_and_subscribes_to_the_feed(
    page: Page, live_server, schedule, approver
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, base, "alice")

    page.goto(f"{base}/changes/calendar/?date={next_tuesday():%Y-%m-%d}")
    expect(page.get_by_role("heading", name="Change calendar")).to_be_visible()
    expect(page.get_by_test_id("calendar-zone")).to_have_text("UTC")
    grid = page.get_by_test_id("calendar-grid")
    expect(grid).to_contain_text("CHG0040001 Rotate card keys")
    expect(grid).to_contain_text("Soft freeze: Frontend code freeze")
    expect(grid).to_contain_text("web-frontend 3.2.0 → Staging")
    expect(page.locator("body")).not_to_contain_text("Billing schema")
    # The two changes overlap; the release falls in the freeze.
    expect(page.locator(".calendar-entry.has-conflict")).to_have_count(3)
    conflicts = page.get_by_test_id("calendar-conflicts")
    expect(conflicts).to_contain_text("CHG0040002 Ledger index rebuild is planned from")
    expect(conflicts).to_contain_text("The window falls in the soft freeze")
    page.screenshot(path=SCREENSHOTS / "calendar.png", full_page=True)

    page.get_by_role("link", name="Week").click()
    expect(page.get_by_role("heading", name="Change calendar")).to_contain_text("Week of")
    expect(page.locator(".calendar-week")).to_be_visible()
    expect(page.get_by_test_id("calendar-entry")).to_have_count(4)

    page.select_option("#id_service", label="web-frontend")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("calendar-entry")).to_have_count(2)
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_test_id("calendar-entry")).to_have_count(0)
    page.get_by_role("link", name="Previous").click()
    page.get_by_test_id("calendar-grid").get_by_role("link", name="web-frontend 3.2.0").click()
    expect(page).to_have_url(f"{base}/approvals/releases/{schedule.pk}/")

    # The feed URL from the profile works without signing in, as a calendar app fetches it.
    page.goto(f"{base}/governance/profile/")
    page.get_by_role("button", name="Create my feed URL").click()
    url = page.get_by_test_id("calendar-feed-url").input_value()
    path = url.split("/changes/", 1)[1]
    feed = requests.get(f"{base}/changes/{path}", timeout=10)
    assert feed.status_code == 200
    summaries = {str(e["SUMMARY"]) for e in Calendar.from_ical(feed.content).walk("VEVENT")}
    assert "CHG0040001 Rotate card keys" in summaries
    assert "CHG0040003 Billing schema" not in summaries

    page.get_by_label("Replace it").check()
    page.get_by_role("button", name="Replace").click()
    expect(page.locator("body")).to_contain_text("Calendar feed URL replaced")
    assert requests.get(f"{base}/changes/{path}", timeout=10).status_code == 404

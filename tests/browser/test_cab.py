"""A CAB member runs a meeting: the queue, the meeting page, attendance, opening, an outcome
recorded as their own decision, and another member seeing it appear without reloading."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from approvals.cab.services import prepare_cab_meetings
from approvals.models import ApprovalStage, Decision
from changes.cab import services as cab
from governance.models import Role
from tests import factories
from tests.approvals.cab.conftest import make_meeting, work_for
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in
from tests.browser.test_live_release import console_errors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fast_polling(settings):
    settings.SIGNOFF_LIVE_POLL_SECONDS = 1


@pytest.fixture
def second_cab_member(db):
    user = factories.UserFactory(username="cecil", first_name="Cecil")
    factories.grant(user, Role.CAB_MEMBER)
    return user


@pytest.fixture
def agenda(org, service, requester, approver, second_approver, cab_member, second_cab_member):
    """Two of every kind of CAB work on payments-api, on a meeting of carol and cecil."""
    work_for(service, requester, [approver, second_approver], count=2)
    meeting = make_meeting(
        cab_member, second_cab_member, quorum=2, services=[service], title="Payments CAB"
    )
    prepare_cab_meetings(now=timezone.now())
    return meeting


def test_a_cab_member_runs_a_meeting(
    page: Page, browser: Browser, live_server, fast_polling, agenda, cab_member, second_cab_member
):
    base = live_server.url
    errors = console_errors(page)
    stage = ApprovalStage.objects.filter(approvers="cab", status="active").order_by("pk").first()
    sign_in(page, base, "carol")

    page.goto(f"{base}/cab/")
    expect(page.locator("[data-testid=cab-queue] tbody tr")).to_have_count(12)
    expect(
        page.locator("[data-testid=cab-kind-counts] [data-kind=cab_approval] .badge")
    ).to_have_text("2")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "cab-queue.png", full_page=True)

    # cecil is in the room too, on his own laptop.
    other = browser.new_context(viewport={"width": 1360, "height": 900})
    cecil = other.new_page()
    sign_in(cecil, base, "cecil")
    cecil.goto(f"{base}/cab/meetings/{agenda.pk}/")
    cecil.get_by_role("button", name="I am present").click()

    page.get_by_role("link", name="Payments CAB").first.click()
    page.get_by_role("button", name="I am present").click()
    expect(page.get_by_test_id("quorum")).to_contain_text("2 of 2 present")
    page.get_by_role("button", name="Open the meeting").click()
    expect(page.get_by_test_id("meeting-status-badge")).to_have_text("In progress")

    item = page.locator(f"[data-key='stage:{stage.pk}']")
    item.get_by_label("Outcome").select_option("approved")
    item.get_by_label("Minutes").fill("Backout plan read; approved for Thursday's window.")
    item.get_by_role("button", name="Record outcome").click()
    expect(item.get_by_test_id("item-outcome")).to_have_text("Approved")
    expect(item).to_contain_text("Recorded by Carol")

    # cecil's page shows it within a poll or two, without a reload.
    expect(cecil.locator(f"[data-key='stage:{stage.pk}'] [data-testid=item-outcome]")).to_have_text(
        "Approved", timeout=10_000
    )
    decision = Decision.objects.get(stage=stage)
    assert (decision.approver.username, decision.channel) == ("carol", "cab")
    page.screenshot(path=SCREENSHOTS / "cab-meeting.png", full_page=True)
    other.close()
    assert errors == []


def test_outcomes_wait_for_the_quorum(page: Page, live_server, agenda, cab_member):
    base = live_server.url
    cab.mark_attendance(meeting=agenda, actor=cab_member, present=True)
    cab.open_meeting(meeting=agenda, actor=cab_member)
    sign_in(page, base, "carol")

    page.goto(f"{base}/cab/meetings/{agenda.pk}/")

    expect(page.get_by_test_id("waiting-for")).to_have_text(
        "Quorum not met: 1 of the 2 members needed are present."
    )
    expect(page.get_by_test_id("outcome-form")).to_have_count(0)

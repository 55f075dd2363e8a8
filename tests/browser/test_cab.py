"""A CAB member runs a meeting: the queue, the meeting page, attendance, opening, an outcome
recorded as their own decision, and another member seeing it appear without reloading."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from approvals import services
from approvals.cab.services import prepare_cab_meetings
from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalStage, Decision
from approvals.services.escalation import escalate_overdue_stages
from changes.cab import services as cab
from changes.models import ChangeRecord, Review
from governance.models import Role
from tests import factories
from tests.approvals.cab.conftest import make_meeting
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


def _release(service, requester, version: str, ref: str, title: str):
    release, _ = services.request_approval(
        data=factories.release_input(
            service,
            factories.environment("production"),
            version=version,
            change_ref=ref,
            change_title=title,
        ),
        actor=requester,
    )
    return release


@pytest.fixture
def agenda(org, service, requester, approver, second_approver, cab_member, second_cab_member):
    """A week of payments work for the CAB, on a meeting of carol and cecil."""
    now = timezone.now()
    _release(service, requester, "2.13.4", "CHG0041187", "Retry budget for card authorisations")
    escalate_overdue_stages(now=now + timedelta(days=30))
    for version, ref, title in (
        ("2.14.0", "CHG0041203", "Instant payouts for sellers"),
        ("2.14.1", "CHG0041219", "Refund webhooks signed with the new key"),
    ):
        release = _release(service, requester, version, ref, title)
        for person in (approver, second_approver):
            factories.decide(release, person)
    change = ChangeRecord.objects.create(
        ref="CHG0041210", title="Move the ledger database to PostgreSQL 17", risk="high"
    )
    change.services.set([service])
    fix = ChangeRecord.objects.create(
        ref="CHG0041195", type="emergency", title="Roll back the 3-D Secure provider"
    )
    fix.services.set([service])
    EmergencyException.objects.create(
        change=fix,
        service=service,
        declared_by=requester,
        justification="Card payments failing for 18% of customers since 09:40.",
        outage="3-D Secure challenges time out",
        ends_at=now + timedelta(hours=4),
    )
    Review.objects.create(
        kind="post_implementation",
        trigger="rolled_back",
        change=change,
        service=service,
        summary="Payments API 2.13.3 failed its health check and was rolled back.",
        due_at=now - timedelta(days=1),
    )
    Review.objects.create(
        kind="post_mortem",
        trigger="emergency",
        change=fix,
        service=service,
        summary="Validate the emergency rollback of the 3-D Secure provider.",
        due_at=now + timedelta(days=3),
    )
    meeting = make_meeting(
        cab_member, second_cab_member, quorum=2, services=[service], title="Payments CAB"
    )
    prepare_cab_meetings(now=now)
    return meeting


def test_a_cab_member_runs_a_meeting(
    page: Page, browser: Browser, live_server, fast_polling, agenda, cab_member, second_cab_member
):
    base = live_server.url
    errors = console_errors(page)
    stage = ApprovalStage.objects.filter(approvers="cab", status="active").order_by("pk").first()
    sign_in(page, base, "carol")

    page.goto(f"{base}/cab/")
    expect(page.locator("[data-testid=cab-queue] tbody tr")).to_have_count(7)
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

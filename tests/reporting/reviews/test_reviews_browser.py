"""In the browser: a requester rates the workflow from the release page, and a CAB member
records a quarterly review outcome (first without the note it needs)."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import Page, expect

from reporting.reviews import services
from reporting.reviews.models import QuarterlyReviewItem, WorkflowFeedback
from tests import factories
from tests.browser.test_accessibility import Scan
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in
from tests.reporting.reviews.conftest import REVIEW_DAY

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_requester_rates_the_workflow_from_the_release_page(
    page: Page, live_server, production_release, approver
):
    factories.decide(production_release, approver, "reject", "No rollback plan.")
    sign_in(page, live_server.url, "dave")
    page.goto(f"{live_server.url}/approvals/releases/{production_release.pk}/")
    card = page.get_by_test_id("feedback-card")
    expect(card).to_be_visible()
    card.get_by_label("Noise").check()
    card.get_by_label("Comment (optional)").fill("Two approvers for a config flag")
    card.get_by_role("button", name="Send rating").click()
    expect(page.get_by_test_id("feedback-saved")).to_be_visible()
    expect(page.get_by_test_id("feedback-current")).to_contain_text("You rated it noise")
    page.get_by_test_id("feedback-card").screenshot(path=str(SCREENSHOTS / "release-feedback.png"))
    feedback = WorkflowFeedback.objects.get(release=production_release)
    assert (feedback.rating, feedback.comment) == ("noise", "Two approvers for a config flag")


def test_a_cab_member_records_an_outcome(page: Page, live_server, quarter, administrator):
    review, _ = services.start_quarterly_review(
        actor=administrator, quarter=date(2026, 7, 1), now=REVIEW_DAY
    )
    item = review.items.get(kind=QuarterlyReviewItem.Kind.EMERGENCY, involved_names="alice")
    sign_in(page, live_server.url, "carol")
    page.goto(f"{live_server.url}/reviews/")
    page.get_by_role("link", name="Quarterly review 2026 Q3").click()
    row = page.locator(f'[data-item="{item.pk}"]')
    row.get_by_label("Outcome").select_option(label="Follow-up required")
    row.get_by_role("button", name="Record outcome").click()
    expect(page.get_by_test_id("review-error")).to_contain_text(
        "Say what follows up, or which control changed. Nothing was recorded."
    )
    row = page.locator(f'[data-item="{item.pk}"]')
    row.get_by_label("Outcome").select_option(label="Follow-up required")
    row.get_by_label("Note").fill("Runbook for checkout 500s")
    row.get_by_role("button", name="Record outcome").click()
    expect(page.locator(f'[data-item="{item.pk}"]').get_by_test_id("outcome")).to_have_text(
        "Follow-up required"
    )
    expect(page.get_by_test_id("summary-emergency")).to_contain_text("2")
    page.screenshot(path=str(SCREENSHOTS / "quarterly-review-outcome.png"), full_page=True)
    item.refresh_from_db()
    assert (item.outcome, item.note, item.decided_by.username) == (
        "follow_up",
        "Runbook for checkout 500s",
        "carol",
    )


def test_the_review_and_feedback_pages_pass_axe(
    page: Page, live_server, quarter, administrator, production_release, approver
):
    review, _ = services.start_quarterly_review(
        actor=administrator, quarter=date(2026, 7, 1), now=REVIEW_DAY
    )
    factories.decide(production_release, approver, "reject", "Not in the freeze.")
    scan = Scan(page, live_server.url)
    sign_in(page, live_server.url, "ada")
    scan.check("quarterly reviews", "/reviews/")
    scan.check("quarterly review", f"/reviews/{review.pk}/")
    scan.check("feedback by rule", "/reviews/feedback/")
    sign_in(page, live_server.url, "dave")
    page.goto(f"{live_server.url}/approvals/releases/{production_release.pk}/")
    expect(page.get_by_test_id("feedback-card")).to_be_visible()
    scan.check("release page with the feedback card")
    scan.assert_clean()

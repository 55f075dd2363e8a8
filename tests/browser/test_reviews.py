"""A post-mortem as its service's owner meets it: the dashboard flags the late team, the list
filtered to it, the review page, completed with a verdict and an action."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from approvals import services
from approvals.emergencies.models import EmergencyException
from changes.reviews.models import Review, ReviewAction
from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def late_post_mortem(org, low_tier_service, dev, pipeline_bot) -> Review:
    """dave's emergency on web-frontend, deployed; its post-mortem is five hours late."""
    owner = factories.UserFactory(username="wanda", first_name="Wanda")
    low_tier_service.owners.add(owner)
    release, _ = services.request_approval(
        data=factories.release_input(
            low_tier_service,
            dev,
            triggered_by="dave",
            change_type="emergency",
            change_title="Hotfix: checkout returns 500s",
        ),
        actor=pipeline_bot,
    )
    now = timezone.now()
    EmergencyException.objects.create(
        change=release.change,
        service=low_tier_service,
        declared_by=release.change.author,
        justification="Checkout is down for every customer.",
        outage="Checkout returns 500s.",
        controls=["extra_monitoring"],
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=3),
    )
    services.record_deployment(release=release, actor=pipeline_bot, status="succeeded")
    review = Review.objects.get(kind="post_mortem")
    Review.objects.filter(pk=review.pk).update(due_at=now - timedelta(hours=5))
    return review


def test_an_owner_completes_a_late_post_mortem(page: Page, live_server, late_post_mortem):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, base, "wanda")

    flag = page.get_by_test_id("late-post-mortems")
    expect(flag).to_contain_text("Payments: 1 overdue")
    page.screenshot(path=str(SCREENSHOTS / "dashboard-late-post-mortems.png"), full_page=True)
    flag.get_by_role("link", name="Payments").click()
    expect(page.get_by_test_id("review-row")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "reviews.png"), full_page=True)

    page.get_by_role("link", name="Post-mortem").click()
    expect(page.get_by_test_id("review-status")).to_contain_text("Overdue")
    page.fill("#id_what_happened", "Checkout returned 500s for 40 minutes after a cert expired.")
    page.fill("#id_root_cause", "The certificate renewal job had been failing silently.")
    page.select_option("#id_justification_valid", value="yes")
    page.screenshot(path=str(SCREENSHOTS / "post-mortem.png"), full_page=True)
    page.get_by_role("button", name="Complete").click()

    expect(page.get_by_test_id("review-findings")).to_contain_text("Justified")
    page.fill("#id_description", "Alert when the renewal job fails")
    page.select_option("#id_owner", value="wanda")
    page.fill("#id_due_on", (timezone.now().date() + timedelta(days=7)).isoformat())
    page.get_by_role("button", name="Add action").click()
    expect(page.get_by_test_id("review-action")).to_contain_text("Alert when the renewal job")
    page.screenshot(path=str(SCREENSHOTS / "post-mortem-completed.png"), full_page=True)

    review = Review.objects.get(pk=late_post_mortem.pk)
    assert (review.status, review.justification_valid, review.completed_by.username) == (
        "completed",
        True,
        "wanda",
    )
    assert ReviewAction.objects.get().owner.username == "wanda"

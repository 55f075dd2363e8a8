"""The core flow as people live it: a pipeline asks, people decide in Chromium, the gate opens."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from approvals.models import Decision
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Screenshots for review go under var/ (ignored by git); `make screenshots` refreshes the README's.
SCREENSHOTS = Path(
    os.environ.get(
        "SIGNOFF_SCREENSHOTS", Path(__file__).resolve().parents[2] / "var" / "screenshots"
    )
)
RELEASE = {
    "service": "payments-api",
    "environment": "production",
    "version": "2.4.1",
    "artifact": {"image": "registry.example.com/payments/api", "digest": factories.digest("2.4.1")},
    "change": {"ref": "CHG0031337", "type": "normal", "title": "Instant payouts for sellers"},
    "pipeline": {
        "provider": "gitlab",
        "run_url": "https://gitlab.example.com/p/-/pipelines/1",
        "triggered_by": "dave",
    },
    "evidence": [{"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0}}],
}


def sign_in(page: Page, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "signoff-demo")
    page.click("button[type=submit]")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def approve_from_queue(page: Page, base: str, username: str, rationale: str, progress: str) -> None:
    sign_in(page, base, username)
    page.goto(f"{base}/approvals/")
    page.get_by_role("link", name="Review").first.click()
    page.fill("#id_rationale", rationale)
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#release-live")).to_contain_text(progress)


def gate(base: str, release_id: int, token: str) -> dict:
    response = requests.get(
        f"{base}/api/v1/releases/{release_id}/gate",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200
    return response.json()


def test_release_through_api_approved_in_browser_then_gate_opens(
    page: Page, live_server, org, pipeline_bot, service
):
    base, token = live_server.url, factories.token_for(pipeline_bot)
    created = requests.post(
        f"{base}/api/v1/releases/",
        json=RELEASE,
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201, created.text
    release_id = created.json()["id"]
    assert gate(base, release_id, token)["status"] == "pending"

    sign_in(page, base, "alice")
    page.goto(f"{base}/approvals/")
    expect(page.get_by_role("link", name="payments-api 2.4.1")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "queue.png", full_page=True)
    page.get_by_role("link", name="Review").first.click()
    expect(page.locator("[data-gate-status]")).to_have_attribute("data-gate-status", "pending")
    page.screenshot(path=SCREENSHOTS / "release-page.png", full_page=True)

    page.get_by_role("button", name="Approve").click()  # no rationale: refused, nothing recorded
    expect(page.locator("#release-live")).to_contain_text("A rationale is required")
    assert Decision.objects.count() == 0
    page.fill("#id_rationale", "Load test at 3x peak is clean; rollback plan attached.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#release-live")).to_contain_text("1 of 2")

    approve_from_queue(page, base, "bob", "Reviewed the payout diff.", "2 of 2")
    assert gate(base, release_id, token)["status"] == "pending"  # the CAB stage is next
    approve_from_queue(page, base, "carol", "CAB: outside month-end freeze.", "1 of 1")
    expect(page.locator("[data-gate-status]")).to_have_attribute("data-gate-status", "approved")
    page.screenshot(path=SCREENSHOTS / "release-approved.png", full_page=True)

    answer = gate(base, release_id, token)
    assert answer["status"] == "approved"
    assert [len(s["approvals"]) for s in answer["stages"]] == [2, 1]


def test_requester_sees_no_approve_button_and_a_forged_post_is_refused(
    page: Page, live_server, org, production_release
):
    base = live_server.url
    sign_in(page, base, "dave")
    page.goto(f"{base}/approvals/releases/{production_release.pk}/")
    expect(page.get_by_test_id("no-decision-reason")).to_contain_text("You requested this release")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    forged = page.request.post(
        f"{base}/approvals/releases/{production_release.pk}/decide/",
        form={"verdict": "approve", "rationale": "self-approval"},
        headers={"X-CSRFToken": csrf, "HX-Request": "true", "Referer": f"{base}/"},
    )
    assert forged.status == 409
    assert "You requested this release" in forged.text()
    assert Decision.objects.count() == 0


def test_a_deployment_that_did_not_wait_for_the_gate_is_flagged_for_everyone(
    page: Page, live_server, org, pipeline_bot, production_release
):
    base, token = live_server.url, factories.token_for(pipeline_bot)
    reported = requests.post(
        f"{base}/api/v1/releases/{production_release.pk}/deployments/",
        json={"status": "succeeded", "url": "https://deploy.example.com/runs/77"},
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reported.status_code == 201, reported.text
    assert reported.json()["deployment"]["approved"] is False

    sign_in(page, base, "erin")  # the auditor
    page.goto(f"{base}/")
    page.get_by_test_id("unapproved-count").get_by_role("link", name="Review").click()
    page.get_by_role("link", name=f"payments-api {production_release.version}").click()
    banner = page.get_by_test_id("unapproved-deployment")
    expect(banner).to_contain_text("Deployed without approval")
    expect(banner).to_contain_text("while the gate said pending")
    expect(page.locator("#deployments")).to_contain_text("unapproved · pending")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "unapproved-deployment.png", full_page=True)


def test_the_queue_fits_a_phone_and_review_is_one_tap_away(
    page: Page, live_server, org, production_release
):
    sign_in(page, live_server.url, "alice")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/approvals/")

    review = page.get_by_test_id("queue-cards").get_by_role("link", name="Review")
    expect(review).to_be_visible()
    box = review.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # on screen, no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "queue-phone.png", full_page=True)
    review.click()
    expect(page.locator("#decide")).to_be_visible()


def test_a_release_out_of_scope_shows_the_error_page_with_a_way_on(
    page: Page, live_server, org, settings
):
    """Served as production serves it (DEBUG off): the app's layout, what happened, where to go."""
    assert settings.DEBUG is False
    base = live_server.url
    sign_in(page, base, "alice")

    response = page.goto(f"{base}/approvals/releases/999999/")

    assert response.status == 404
    expect(page).to_have_title("Not found · Signoff")
    expect(page.get_by_role("heading", name="Nothing here, or nothing you can see")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()  # still signed in
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "error-404.png", full_page=True)
    page.get_by_role("link", name="Search releases").click()
    expect(page).to_have_url(f"{base}/approvals/releases/")

"""An open release page follows what others do, without touching what its reader is typing."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Page, expect

from approvals import services
from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TYPED = "Read the migration; still checking the rollback"


@pytest.fixture
def staging_release(org, service, staging, pipeline_bot):
    """dave's release of payments-api to staging: one approval of the service decides it."""
    release, _ = services.request_approval(
        data=factories.release_input(service, staging, triggered_by="dave"), actor=pipeline_bot
    )
    return release


@pytest.fixture
def fast_polling(settings):
    settings.SIGNOFF_LIVE_POLL_SECONDS = 1


def console_errors(page: Page) -> list[str]:
    """Errors the page logs from now on (a Content-Security-Policy refusal, an htmx error), less
    the browser's own request for a favicon the site does not have."""
    errors: list[str] = []

    def keep(message) -> None:
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            errors.append(message.text)

    page.on("console", keep)
    return errors


def set_visibility(page: Page, state: str) -> None:
    """Play a tab going to the background or coming back (headless tabs are always visible)."""
    page.evaluate(
        """state => {
            Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )


def test_another_approval_shows_up_while_the_typed_rationale_stays(
    page: Page, live_server, fast_polling, staging_release, second_approver, pipeline_bot
):
    base, pk = live_server.url, staging_release.pk
    errors = console_errors(page)
    sign_in(page, base, "alice")
    page.goto(f"{base}/approvals/releases/{pk}/")
    expect(page.locator("[data-gate-status]")).to_have_attribute("data-gate-status", "pending")
    page.fill("#id_rationale", TYPED)

    # bob approves through the API, from his own pipeline tooling.
    answer = requests.post(
        f"{base}/api/v1/releases/{pk}/decisions/",
        json={
            "decision": "approve",
            "rationale": "Diff reviewed.",
            "digest": staging_release.digest,
        },
        headers={"Authorization": f"Bearer {factories.token_for(second_approver)}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text

    # Within a few polls (1 s here): the gate, the plan and its decisions, the ledger.
    gate = page.locator("[data-gate-status]")
    expect(gate).to_have_attribute("data-gate-status", "approved", timeout=8000)
    plan = page.locator("#plan")
    expect(plan).to_contain_text("1 of 1")
    expect(plan).to_contain_text("Bob approved")
    expect(plan).to_contain_text("Diff reviewed.")
    expect(page.locator("#release-status")).to_contain_text("Approved")
    expect(page.locator("#ledger")).to_contain_text("decision.recorded · approve")
    news = page.locator("#release-news")
    expect(news).to_have_attribute("aria-live", "polite")
    expect(news).to_contain_text("bob approved stage Service approval.")
    expect(news).to_contain_text("The gate now answers approved (it was pending).")
    # The form alice was typing in is still there, with her text, and says it no longer applies.
    expect(page.locator("#id_rationale")).to_have_value(TYPED)
    expect(page.locator("#id_rationale")).to_be_focused()  # typing goes on where it was
    expect(page.get_by_test_id("decide-notice")).to_contain_text(
        "This form no longer applies: This request is approved; no more decisions."
    )

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "release-live.png", full_page=True)

    # The pipeline reports the deployment: the table follows too.
    services.record_deployment(release=staging_release, actor=pipeline_bot, status="succeeded")
    expect(page.locator("#deployments")).to_contain_text("Succeeded", timeout=8000)
    expect(news).to_contain_text("ci-bot reported a succeeded deployment.")
    expect(page.locator("#id_rationale")).to_have_value(TYPED)
    assert errors == []


def test_a_hidden_tab_does_not_ask_and_asks_at_once_when_shown(
    page: Page, live_server, settings, staging_release
):
    base, pk = live_server.url, staging_release.pk
    settings.SIGNOFF_LIVE_POLL_SECONDS = 1
    sign_in(page, base, "alice")
    page.goto(f"{base}/approvals/releases/{pk}/")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/updates/" in r.url else None)
    page.wait_for_timeout(1500)
    assert polls, "a visible tab asks every second"

    set_visibility(page, "hidden")
    page.wait_for_timeout(300)  # a request already on its way may still land
    polls.clear()
    page.wait_for_timeout(2500)
    assert polls == []

    # With a long interval, a request right after the tab shows again can only be the catch-up.
    settings.SIGNOFF_LIVE_POLL_SECONDS = 600
    page.reload()
    set_visibility(page, "hidden")
    with page.expect_request(lambda r: "/updates/" in r.url, timeout=2000):
        set_visibility(page, "visible")


def test_a_final_release_does_not_poll(
    page: Page, live_server, fast_polling, staging_release, approver
):
    factories.decide(staging_release, approver, "reject", "Not this week.")
    sign_in(page, live_server.url, "bob")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/updates/" in r.url else None)
    page.goto(f"{live_server.url}/approvals/releases/{staging_release.pk}/")
    expect(page.locator("[data-gate-status]")).to_have_attribute("data-gate-status", "rejected")
    page.wait_for_timeout(2500)
    assert polls == []

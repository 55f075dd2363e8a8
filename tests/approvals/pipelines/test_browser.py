"""In Chromium: an administrator sets up GitHub and maps a repository on the Integrations page;
a run GitHub holds shows on the page and on its release until the decision answers it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from approvals import services
from approvals.pipelines.models import PipelineIntegration, PipelineWait, RepositoryMapping
from governance.models import Role
from tests import factories
from tests.approvals.pipelines import payloads
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_administrator_sets_up_github_and_sees_the_waiting_run(page: Page, live_server, policy):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    admin = factories.UserFactory(username="ada", first_name="Ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    factories.grant(bot, Role.RELEASE_MANAGER)
    service = factories.ServiceFactory(slug="payments-api", tier=1)
    release, _ = services.request_approval(
        data=factories.release_input(
            service, factories.environment("production"), pipeline_sha=payloads.SHA
        ),
        actor=bot,
    )
    sign_in(page, live_server.url, "ada")

    page.goto(f"{live_server.url}/approvals/integrations/")
    settings = page.get_by_test_id("github-settings")
    settings.get_by_label("Webhook secret").fill(payloads.GITHUB_SECRET)
    settings.get_by_label("Reason").fill("Protection rules for payments")
    settings.get_by_role("button", name="Save GitHub").click()
    expect(page.get_by_test_id("github-configured")).to_contain_text(
        "Secret …0001 · API https://api.github.com"
    )
    mappings = page.get_by_test_id("repository-mappings")
    mappings.get_by_label("Repository").fill("acme/payments-api")
    mappings.get_by_label("Signoff service").select_option("payments-api")
    mappings.get_by_label("Reason").fill("Payments deploys from GitHub Actions")
    mappings.get_by_role("button", name="Map repository").click()
    expect(page.get_by_test_id("repository-mapping")).to_contain_text("acme/payments-api")
    assert PipelineIntegration.objects.get().webhook_secret == payloads.GITHUB_SECRET
    assert RepositoryMapping.objects.get().service == service

    PipelineWait.objects.create(
        provider="github",
        release=release,
        external_id="deployment:1:production",
        environment_name="production",
        run_url="https://github.com/acme/payments-api/actions/runs/9001",
        sha=payloads.SHA,
        callback={"url": "https://api.github.com/x", "installation_id": 1},
    )
    page.reload()
    expect(page.get_by_test_id("waiting-run")).to_contain_text("payments-api")
    page.screenshot(path=SCREENSHOTS / "integrations.png", full_page=True)

    page.get_by_role("link", name=f"payments-api {release.version}", exact=True).click()
    expect(page.get_by_test_id("pipeline-run")).to_contain_text("waiting for the gate")
    page.get_by_test_id("release-pipelines").screenshot(path=SCREENSHOTS / "release-pipelines.png")

"""Post-deploy verification as people meet it: an administrator gives a service its health URL
(a bad one first), the pipeline deploys, the health check fails, and the approver finds the
failed verification and the rollback on the release page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from approvals import services
from approvals.verification import polling
from governance.models import Role, Service
from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_failed_health_check_shows_on_the_release_page_with_its_rollback(
    page: Page, live_server, approved_release, service, stub, pipeline_bot
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    admin = factories.UserFactory(username="ada", first_name="Ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    health = stub.url("/healthz")

    sign_in(page, base, "ada")
    page.goto(f"{base}/governance/catalogue/services/{service.pk}/")
    page.fill("#id_health_urls", "payments.internal/healthz")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#id_health_urls")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("body")).to_contain_text("Not an http(s) URL: “payments.internal/healthz”")
    assert Service.objects.get(pk=service.pk).health_urls == []
    page.fill("#id_health_urls", health)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("body")).to_contain_text("Services")
    assert Service.objects.get(pk=service.pk).health_urls == [health]

    deployment = services.record_deployment(
        release=approved_release,
        actor=pipeline_bot,
        status="succeeded",
        rollback_url=stub.url("/rollback"),
    )
    polling.verify_due(deployment.created_at)
    stub.health_status = 503
    polling.verify_due(deployment.created_at + timedelta(minutes=1))

    sign_in(page, base, "alice")
    page.goto(f"{base}/approvals/releases/{approved_release.pk}/")
    cell = page.locator(f'[data-testid="deployment-{deployment.pk}"] [data-testid="verification"]')
    expect(cell).to_contain_text("failed")
    expect(cell).to_contain_text(f"{health} answered 503 Service Unavailable")
    expect(cell).to_contain_text("2 health checks, 1 unhealthy")
    expect(cell.locator('[data-testid="rollback"]')).to_contain_text("Rollback hook called")
    page.locator("#deployments").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "release-verification.png", full_page=True)

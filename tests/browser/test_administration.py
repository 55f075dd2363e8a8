"""Administration as people do it: grant a role, tag a service, delegate, the delegate approves,
review access and certify several grants at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from approvals.models import Decision
from governance.models import AccessReviewItem, LedgerEntry, Role, Service
from tests import factories
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_grant_delegate_approve_and_review(
    page: Page, live_server, org, production_release, service, approver
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    admin = factories.UserFactory(username="ada", first_name="Ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    factories.UserFactory(username="frank", first_name="Frank", last_name="Ivanova")

    # The administrator makes frank an approver of web-frontend, with a reason.
    sign_in(page, base, "ada")
    page.goto(f"{base}/governance/roles/")
    page.select_option("#id_user", label="Frank Ivanova")
    page.select_option("#id_role", value=Role.APPROVER)
    page.select_option("#id_service", label="web-frontend")
    page.fill("#id_reason", "Joins the web on-call rota")
    page.get_by_role("button", name="Grant").click()
    expect(page.locator("body")).to_contain_text("Role granted.")
    expect(page.locator("body")).to_contain_text("Joins the web on-call rota")

    # web-frontend now takes card payments: ada ticks PCI and types two more tags, one badly first.
    page.goto(f"{base}/governance/catalogue/services/")
    page.get_by_role("link", name="web-frontend", exact=True).click()
    page.get_by_label("PCI (PCI DSS, card data)").check()
    page.fill("#id_other_compliance_tags", "nis2, ISO 27001")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#id_other_compliance_tags")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("body")).to_contain_text("Not a valid tag: “ISO 27001”.")
    assert Service.objects.get(slug="web-frontend").compliance_tags == []
    page.screenshot(path=SCREENSHOTS / "catalogue-service.png", full_page=True)
    page.fill("#id_other_compliance_tags", "nis2, FedRAMP, NIS2")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("body")).to_contain_text("Saved.")
    assert Service.objects.get(slug="web-frontend").compliance_tags == ["PCI", "NIS2", "FEDRAMP"]
    expect(page.locator("tbody tr", has_text="web-frontend")).to_contain_text("PCINIS2FEDRAMP")
    page.select_option("select[name=tag]", value="NIS2")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text("web-frontend")

    # alice is suddenly off sick: the administrator delegates her authority to frank.
    page.goto(f"{base}/governance/delegations/")
    page.select_option("#id_delegator", label=str(approver))
    page.select_option("#id_delegate", label="Frank Ivanova")
    start = timezone.localtime(timezone.now() - timedelta(minutes=5))
    page.fill("#id_starts_at", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_ends_at", (start + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_reason", "Sick leave")
    page.get_by_role("button", name="Delegate").click()
    expect(page.locator("body")).to_contain_text("in force")
    page.screenshot(path=SCREENSHOTS / "delegations.png", full_page=True)

    # frank finds the release in his queue, marked as delegated, and approves for alice.
    sign_in(page, base, "frank")
    page.goto(f"{base}/approvals/")
    expect(page.locator("body")).to_contain_text("delegated to you")
    page.get_by_role("link", name="Review").first.click()
    expect(page.locator("#decide")).to_contain_text("on behalf of Alice")
    page.fill("#id_rationale", "Reviewed for Alice while she is away.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#release-live")).to_contain_text("for Alice")
    decision = Decision.objects.get()
    assert (decision.approver.username, decision.on_behalf_of.username) == ("frank", "alice")

    # The administrator starts an access review and sees the findings.
    sign_in(page, base, "ada")
    page.goto(f"{base}/governance/access-reviews/")
    page.get_by_role("button", name="Start a review now").click()
    expect(page.locator("body")).to_contain_text("No expiry")
    page.select_option("select[name=finding]", value="no_expiry")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody")).to_contain_text("Frank")

    # ...and keeps every grant on the page at once, with one reason: all but her own.
    others = AccessReviewItem.objects.exclude(user__username="ada").count()
    page.get_by_label("Select every grant you can certify on this page").check()
    expect(page.locator("[data-selected-count]")).to_have_text(f"{others} grants selected")
    expect(page.locator('input[name="items"]:checked')).to_have_count(others)
    page.fill("#certify-reason", "Confirmed with the team leads")
    page.screenshot(path=SCREENSHOTS / "access-review.png", full_page=True)
    page.get_by_role("button", name="Keep selected").click()
    expect(page.locator("body")).to_contain_text(f"Kept {others} grants.")
    expect(page.locator("body")).to_contain_text("Someone else certifies your own access.")
    expect(page.locator('input[name="items"]')).to_have_count(0)
    assert AccessReviewItem.objects.filter(outcome="keep").count() == others
    assert LedgerEntry.objects.filter(kind="access_review.certified").count() == others

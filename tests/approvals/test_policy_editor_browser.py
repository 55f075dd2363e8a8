"""An administrator edits the policy in the browser: the draft is validated as it is typed,
simulated against past releases, and proposed."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from approvals import services
from governance.models import Policy, Role
from governance.policy.services import publish_policy
from tests import factories
from tests.approvals.test_policy_editor import POLICY, PRODUCTION_ONE, PRODUCTION_THREE
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_type_a_draft_see_it_validated_simulate_it_and_propose_it(
    page: Page, live_server, org, service, low_tier_service, production, staging, pipeline_bot
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for target in (service, low_tier_service):
        for environment in (production, staging):
            services.request_approval(
                data=factories.release_input(target, environment, triggered_by="dave"),
                actor=pipeline_bot,
            )
    admin = factories.UserFactory(username="ada", first_name="Ada", is_staff=True)
    factories.grant(admin, Role.ADMINISTRATOR)
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=POLICY, actor=None)
    sign_in(page, base, "ada")

    page.goto(f"{base}/policies/editor/")
    editor = page.locator("#id_source")
    expect(editor).to_have_value(POLICY)

    # A typo in a condition: the error and its place appear under the editor.
    editor.fill(POLICY.replace('change.type != "emergency"', 'change.type #= "emergency"'))
    editor.press("End")
    expect(page.get_by_test_id("validation")).to_contain_text("Line 18, column 22:")
    expect(page.get_by_test_id("validation")).to_contain_text("CEL syntax error")

    # Fixed, and production now needs three service approvers.
    editor.fill(PRODUCTION_THREE)
    editor.press("End")
    expect(page.get_by_test_id("validation")).to_contain_text("Valid: 3 rules.")

    page.fill("#id_days", "7")
    page.get_by_role("button", name="Show diff and simulate").click()
    expect(page.get_by_test_id("policy-diff")).to_contain_text("+          count: 3")
    expect(page.get_by_test_id("total-simulated")).to_have_text("4")
    expect(page.get_by_test_id("total-changed")).to_have_text("2")
    expect(page.get_by_test_id("total-tightened")).to_have_text("2")
    expect(page.get_by_test_id("changed-release")).to_have_count(2)
    expect(page.get_by_test_id("simulation")).to_contain_text("2 → 3 approvals")
    expect(page.get_by_test_id("loosening")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "policy-editor-simulation.png"), full_page=True)

    page.fill("#id_comment", "Production needs three approvers")
    page.get_by_role("button", name="Propose").click()
    expect(page.locator("body")).to_contain_text("Published Default release policy v3.")
    assert Policy.objects.get(slug="default").source == PRODUCTION_THREE


def test_a_loosening_waits_for_a_second_administrator_who_confirms_it(
    page: Page, live_server, org, service, production, pipeline_bot
):
    base = live_server.url
    services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )
    for username in ("ada", "grace"):
        factories.grant(factories.UserFactory(username=username), Role.ADMINISTRATOR)
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=POLICY, actor=None)

    sign_in(page, base, "ada")
    page.goto(f"{base}/policies/editor/")
    page.locator("#id_source").fill(PRODUCTION_ONE)
    page.get_by_role("button", name="Show diff and simulate").click()
    expect(page.get_by_test_id("loosening")).to_contain_text(
        "Production: stage 'Service approval': 2 → 1 approvals (1 release)"
    )
    page.fill("#id_comment", "One approver is enough")
    page.get_by_role("button", name="Propose").click()
    expect(page.locator("body")).to_contain_text("waits for a second administrator")

    sign_in(page, base, "grace")
    page.goto(f"{base}/governance/policies/")
    expect(page.get_by_test_id("proposal-loosening")).to_contain_text("2 → 1 approvals")
    page.screenshot(path=str(SCREENSHOTS / "policy-loosening-proposal.png"), full_page=True)
    page.get_by_role("button", name="Approve and publish").click()
    expect(page.locator("body")).to_contain_text("confirm the loosening explicitly")
    assert Policy.objects.get(slug="default").source == POLICY

    page.get_by_label("I confirm this loosening").check()
    page.get_by_role("button", name="Approve and publish").click()
    expect(page.locator("body")).to_contain_text("Published Default release policy v3.")
    assert Policy.objects.get(slug="default").source == PRODUCTION_ONE

"""Accessibility: axe-core checks each main page, as each kind of person sees it, in Chromium.

axe-core (vendored under tests/browser/vendor/axe-core/, see its README) runs the WCAG 2.0, 2.1
and 2.2 level A and AA rules. A page passes when axe finds no "serious" or "critical" violation;
"moderate" and "minor" findings are printed but not failed on, so the test stays a gate on what
blocks people rather than a style checker.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from approvals import services
from changes.freezes.services import FreezeInput, create_freeze
from changes.models import Incident
from changes.records.services import ChangeInput, open_change
from governance.authority import reviews
from governance.authority.services import create_delegation
from governance.identity import services as identity
from governance.models import Policy, Role
from governance.policy import services as policy_changes
from tests import factories
from tests.browser.test_approval_flow import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
BLOCKING = {"serious", "critical"}
PHONE = {"width": 390, "height": 844}


def axe_violations(page: Page) -> list[dict]:
    """Run axe on the page as it is now; its violations, each with its nodes' targets."""
    return page.evaluate(
        """async (tags) => {
            const results = await axe.run(document, {
                runOnly: {type: "tag", values: tags},
                resultTypes: ["violations"],
            });
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                targets: v.nodes.map((n) => n.target.join(" ")),
            }));
        }""",
        WCAG_TAGS,
    )


class Scan:
    """Pages checked so far and what axe found on them, reported together at the end."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.blocking: list[str] = []
        # Injected through the DevTools protocol before each document's own scripts, which the
        # Content-Security-Policy does not govern: add_script_tag() would add an inline <script>
        # that our CSP (script-src 'self') rightly refuses, and bypass_csp=True would check pages
        # that differ from what people get (the CSP also blocks inline styles).
        page.add_init_script(path=AXE)

    def check(self, name: str, path: str | None = None, *, status: int = 200) -> None:
        if path is not None:
            response = self.page.goto(self.base + path)
            assert response is not None and response.status == status, (name, response)
        self.page.wait_for_load_state("load")
        expect(self.page.locator("main#main")).to_be_attached()
        for violation in axe_violations(self.page):
            line = (
                f"{name} ({self.page.url}): {violation['id']} [{violation['impact']}] "
                f"{violation['help']} <{violation['helpUrl']}>\n    "
                + "\n    ".join(violation["targets"])
            )
            if violation["impact"] in BLOCKING:
                self.blocking.append(line)
            else:
                print(line)

    def assert_clean(self) -> None:
        assert not self.blocking, "axe found serious or critical violations:\n" + "\n".join(
            self.blocking
        )


@pytest.fixture
def scan(page: Page, live_server) -> Scan:
    return Scan(page, live_server.url)


@pytest.fixture
def releases(production_release, approver, second_approver, cab_member, requester, service):
    """An approved release (every stage decided) and a pending one that bob has approved."""
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person, rationale="Reviewed the diff and tests.")
    pending, _ = services.request_approval(
        data=factories.release_input(service, production_release.environment, triggered_by="dave"),
        actor=requester,
    )
    factories.decide(pending, second_approver, rationale="Canary looked healthy.")
    return production_release, pending


def test_sign_in_pages_have_no_serious_violations(scan: Scan, org):
    scan.check("sign-in", "/accounts/login/")
    scan.page.fill("#id_username", "alice")
    scan.page.fill("#id_password", "not her password")
    scan.page.click("button[type=submit]")
    expect(scan.page.get_by_role("alert")).to_contain_text("didn't match")
    scan.check("sign-in, refused")
    scan.assert_clean()


def test_approver_pages_have_no_serious_violations(scan: Scan, releases, approver):
    approved, pending = releases
    sign_in(scan.page, scan.base, "alice")
    scan.check("dashboard", "/")
    scan.check("my approvals", "/approvals/")
    scan.check("releases", "/approvals/releases/")
    scan.check("pending release", f"/approvals/releases/{pending.pk}/")
    scan.check("approved release", f"/approvals/releases/{approved.pk}/")
    scan.check("delegations", "/governance/delegations/")
    scan.check("profile", "/governance/profile/")
    scan.check("404", "/approvals/releases/999999/", status=404)
    scan.page.set_viewport_size(PHONE)
    scan.check("my approvals, phone", "/approvals/")
    scan.check("pending release, phone", f"/approvals/releases/{pending.pk}/")
    scan.assert_clean()


def test_administrator_pages_have_no_serious_violations(
    scan: Scan, org, service, approver, second_approver, administrator
):
    prepare_administration(administrator, approver, second_approver)
    sign_in(scan.page, scan.base, "ada")
    scan.check("roles", "/governance/roles/")
    scan.check("catalogue: services", "/governance/catalogue/services/")
    scan.check("catalogue: people", "/governance/catalogue/people/")
    scan.check("catalogue: edit service", f"/governance/catalogue/services/{service.pk}/")
    scan.check("catalogue: new team", "/governance/catalogue/teams/new/")
    scan.page.get_by_role("button", name="Save").click()
    expect(scan.page.locator("[aria-invalid=true]").first).to_be_visible()
    scan.check("catalogue: new team, refused")
    scan.check("access reviews", "/governance/access-reviews/")
    scan.page.get_by_role("link", name="Access review").first.click()
    scan.check("an access review")
    scan.check("policies", "/governance/policies/")
    scan.check("lockouts", "/governance/lockouts/")
    scan.check("SCIM tokens", "/governance/scim-tokens/")
    scan.page.get_by_role("button", name="Issue token").click()
    expect(scan.page.locator("#id_name")).to_have_attribute("aria-invalid", "true")
    scan.check("SCIM tokens, refused")
    scan.assert_clean()


def test_freeze_pages_have_no_serious_violations(scan: Scan, releases, administrator):
    approved, _ = releases
    now = timezone.now().replace(microsecond=0, tzinfo=None)
    freeze = create_freeze(
        data=FreezeInput(
            name="Quarter close",
            kind="hard",
            time_zone="Europe/Berlin",
            local_start=now - timedelta(hours=1),
            local_end=now + timedelta(hours=5),
            environments=[approved.environment],
            reason="Quarter close",
        ),
        actor=administrator,
    )
    sign_in(scan.page, scan.base, "ada")
    scan.check("freezes", "/changes/freezes/")
    scan.check("new freeze", "/changes/freezes/new/")
    scan.page.get_by_role("button", name="Save").click()
    expect(scan.page.locator("[aria-invalid=true]").first).to_be_visible()
    scan.check("new freeze, refused")
    scan.check("a freeze", f"/changes/freezes/{freeze.pk}/")
    scan.check("release held by a freeze", f"/approvals/releases/{approved.pk}/")
    scan.assert_clean()


def test_the_first_tab_reaches_a_visible_skip_link_to_the_main_content(
    page: Page, live_server, org, approver
):
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/approvals/")

    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    expect(skip).to_have_text("Skip to main content")
    expect(skip).to_be_visible()  # visually hidden until it has the focus
    page.keyboard.press("Enter")

    expect(page.locator(":focus")).to_have_id("main")
    expect(page.locator("main")).to_have_count(1)


def test_forbidden_page_has_no_serious_violations(scan: Scan, org, outsider):
    sign_in(scan.page, scan.base, "mallory")
    scan.check("403", "/governance/roles/", status=403)
    scan.assert_clean()


def prepare_administration(administrator, approver, second_approver) -> None:
    """Something on every administration page: a delegation, a review, a proposal, a lockout."""
    now = timezone.now()
    create_delegation(
        delegator=approver,
        delegate=second_approver,
        service=None,
        starts_at=now,
        ends_at=now + timedelta(days=3),
        reason="Annual leave",
        actor=approver,
    )
    reviews.start_access_review(actor=administrator)
    identity.issue_scim_token(name="okta-production", actor=administrator)
    # An administrator who also approves cannot publish alone: the change waits on the page.
    proposer = factories.UserFactory(username="grace", first_name="Grace")
    factories.grant(proposer, Role.ADMINISTRATOR)
    factories.grant(proposer, Role.APPROVER)
    policy = Policy.objects.first()
    policy_changes.change_policy(
        policy_obj=policy, source=policy.source + "\n", actor=proposer, comment="Whitespace"
    )
    AccessAttempt.objects.create(
        username="mallory",
        ip_address="203.0.113.7",
        user_agent="browser",
        http_accept="text/html",
        path_info="/accounts/login/",
        get_data="",
        post_data="",
        failures_since_start=settings.AXES_FAILURE_LIMIT,
    )


def test_calendar_pages_have_no_serious_violations(scan: Scan, releases, approver, service):
    approved, pending = releases
    now = timezone.now()
    change = approved.change
    change.planned_start, change.planned_end = now, now + timedelta(hours=2)
    change.save(update_fields=["planned_start", "planned_end"])
    pending.planned_at = now + timedelta(hours=1)
    pending.save(update_fields=["planned_at"])
    ada = factories.UserFactory(username="ada", first_name="Ada")
    factories.grant(ada, Role.ADMINISTRATOR)
    create_freeze(
        data=FreezeInput(
            name="Quarter close",
            kind="soft",
            time_zone="Europe/Berlin",
            local_start=now.replace(tzinfo=None, microsecond=0),
            local_end=now.replace(tzinfo=None, microsecond=0) + timedelta(hours=3),
            environments=[approved.environment],
            reason="Quarter close",
        ),
        actor=ada,
    )
    sign_in(scan.page, scan.base, "alice")
    scan.check("calendar, month", "/changes/calendar/")
    scan.check("calendar, week", "/changes/calendar/?view=week")
    scan.check("calendar, bad date", "/changes/calendar/?date=2026-13-45", status=400)
    scan.page.goto(scan.base + "/governance/profile/")
    scan.page.get_by_role("button", name="Create my feed URL").click()
    scan.check("profile with a feed URL")
    scan.page.set_viewport_size(PHONE)
    scan.check("calendar, month, phone", "/changes/calendar/")
    scan.assert_clean()


def test_change_pages_have_no_serious_violations(
    scan: Scan, releases, service, requester, auditor, administrator
):
    """The change list, a change with everything on it, and its form, for those who see them:
    release managers open and edit, approvers and auditors read, administrators do both."""
    _, pending = releases
    now = timezone.now()
    change = open_change(
        data=ChangeInput(
            title="Move payments to the new ledger",
            services=[service],
            planned_start=now + timedelta(hours=1),
            planned_end=now + timedelta(hours=3),
            time_zone="Europe/Paris",
            implementation_plan="Dual-write, backfill, switch reads.",
        ),
        actor=requester,
    )
    pending.change.planned_start, pending.change.planned_end = now, now + timedelta(hours=2)
    pending.change.save(update_fields=["planned_start", "planned_end"])
    pending.planned_at = now + timedelta(hours=1)
    pending.save(update_fields=["planned_at"])
    trouble = Incident.objects.create(
        source="api", external_id="INC1", title="Card declines", severity=1, priority="P1"
    )
    trouble.services.set([service])
    sign_in(scan.page, scan.base, "dave")
    scan.check("changes", "/changes/")
    scan.check("a change, release manager", f"/changes/{pending.change_id}/")
    scan.check("new change", "/changes/new/")
    scan.page.get_by_role("button", name="Save").click()
    expect(scan.page.locator("[aria-invalid=true]").first).to_be_visible()
    scan.check("new change, refused")
    scan.check("edit change", f"/changes/{change.pk}/edit/")
    sign_in(scan.page, scan.base, "alice")
    scan.check("changes, approver", "/changes/?state=authorise")
    scan.check("a change, approver", f"/changes/{pending.change_id}/")
    scan.check("release with its change and incidents", f"/approvals/releases/{pending.pk}/")
    scan.page.set_viewport_size(PHONE)
    scan.check("a change, phone", f"/changes/{pending.change_id}/")
    scan.check("changes, phone", "/changes/")
    scan.page.set_viewport_size({"width": 1360, "height": 900})
    sign_in(scan.page, scan.base, "erin")
    scan.check("a change, auditor", f"/changes/{change.pk}/")
    sign_in(scan.page, scan.base, "ada")
    scan.check("a change, administrator", f"/changes/{change.pk}/")
    scan.check("new change, administrator", "/changes/new/")
    scan.assert_clean()

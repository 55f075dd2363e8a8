"""Content-Security-Policy: no inline script or style anywhere, and pages still work under it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from governance.models import Role
from tests import factories
from tests.browser.test_approval_flow import sign_in

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_STYLE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
HTMX_CONFIG = re.compile(r"<meta name=\"htmx-config\" content='([^']*)'>")


def policy_of(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.mark.django_db
def test_pages_carry_a_policy_that_allows_no_inline_script_style_or_eval(client):
    policy = policy_of(client.get("/accounts/login/"))
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert not any("unsafe" in source for sources in policy.values() for source in sources)


def test_templates_hold_no_inline_style_script_or_event_handler():
    offenders = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        for pattern in (INLINE_STYLE, INLINE_SCRIPT, EVENT_HANDLER):
            offenders += [
                f"{template.relative_to(TEMPLATES)}: {m[0]}" for m in pattern.finditer(text)
            ]
    assert offenders == []


@pytest.mark.django_db
def test_htmx_is_configured_to_need_no_inline_style_or_eval(client):
    page = client.get("/accounts/login/").content.decode()
    config = json.loads(HTMX_CONFIG.search(page)[1])
    assert config["includeIndicatorStyles"] is False
    assert config["allowEval"] is False
    assert config["allowScriptTags"] is False
    # The error handling the pages rely on stays: 409/422 swap their messages in.
    assert {"code": "409", "swap": True} in config["responseHandling"]


class Violations:
    """Console messages in which Chromium reports a blocked script, style, eval or resource."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._record)
        page.on("pageerror", lambda error: self.messages.append(f"page error: {error}"))

    def _record(self, message) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.messages.append(f"{message.location.get('url')}: {message.text}")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_work_under_the_policy_without_a_single_violation(
    page: Page, live_server, production_release
):
    base, violations = live_server.url, Violations(page)
    admin = factories.UserFactory(username="ada", first_name="Ada", is_staff=True)
    factories.grant(admin, Role.ADMINISTRATOR)
    admin.is_superuser = True
    admin.save(update_fields=["is_superuser"])
    sign_in(page, base, "ada")

    # The release page: stage progress without a style attribute.
    page.goto(f"{base}/approvals/releases/{production_release.pk}/")
    progress = page.locator("#release-live progress").first
    expect(progress).to_be_visible()
    assert progress.get_attribute("max") == "2" and progress.get_attribute("value") == "0"

    # htmx still filters the release list in place.
    page.goto(f"{base}/approvals/releases/")
    expect(page.locator("#release-table")).to_contain_text("payments-api")
    with page.expect_response(lambda r: "q=no-such-release" in r.url):
        page.locator("input[name=q]").press_sequentially("no-such-release")
    expect(page.locator("#release-table")).not_to_contain_text("payments-api")

    # The TOTP QR code is inline SVG: it renders at the size its class gives it.
    page.goto(f"{base}/governance/profile/")
    qr = page.get_by_test_id("totp-qr")
    expect(qr.locator("svg path")).to_have_count(1)
    assert qr.bounding_box()["width"] == 200

    # Swagger UI and the Django admin run under the same policy.
    page.goto(f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Signoff API")
    page.goto(f"{base}/admin/")
    expect(page.locator("#site-name")).to_be_visible()
    page.goto(f"{base}/approvals/releases/{production_release.pk}/")
    expect(page.locator("#release-live")).to_be_visible()

    assert violations.messages == []

"""A release manager opens the Integrations page, reads the GitHub snippet and the Azure DevOps
check's configuration, and downloads the client."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.approvals.ci.test_snippets import ROOT
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_release_manager_copies_a_snippet_and_downloads_the_client(
    page: Page, live_server, requester, tmp_path
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    sign_in(page, base, "dave")
    page.goto(f"{base}/approvals/integrations/")
    snippets = page.get_by_test_id("pipeline-snippets")
    expect(snippets.get_by_role("heading", name="Ask Signoff from any pipeline")).to_be_visible()
    github = snippets.get_by_test_id("snippet-github")
    expect(github.locator("pre")).to_be_hidden()
    github.locator("summary").click()
    expect(github.locator("pre")).to_contain_text("python3 signoff-gate wait --timeout 3600")
    snippets.get_by_test_id("snippet-azure").locator("summary").click()
    expect(snippets.get_by_test_id("azure-check-headers")).to_contain_text(
        '"AuthToken": "$(system.AccessToken)"'
    )
    expect(snippets.get_by_test_id("exit-codes")).to_contain_text("rejected or withdrawn")
    page.screenshot(path=SCREENSHOTS / "integrations-snippets.png", full_page=True)

    with page.expect_download() as download:
        snippets.get_by_test_id("client-download").click()

    saved = tmp_path / "signoff-gate"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "signoff-gate"
    assert saved.read_bytes() == (ROOT / "tools" / "signoff-gate").read_bytes()

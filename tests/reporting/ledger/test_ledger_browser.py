"""An auditor watches a verification run progress on the ledger page, starts one of their own,
and downloads the export."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from governance.ledger.models import LedgerEntry, LedgerVerification

# Debian's Chromium, as every browser test launches it (fixtures of tests/browser/).
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_watches_a_run_then_verifies_the_ledger_and_downloads_it(
    page: Page, live_server, production_release, auditor, eager
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    entries = LedgerEntry.objects.count()
    running = LedgerVerification.objects.create(
        status="running",
        total=entries,
        verified=entries // 2,
        started_at=timezone.now(),
        progressed_at=timezone.now(),
    )

    sign_in(page, base, "erin")
    page.goto(f"{base}/reports/ledger/")
    expect(page.get_by_role("heading", name="Evidence ledger")).to_be_visible()
    expect(page.get_by_test_id("entry-count")).to_have_text(str(entries))
    card = page.locator(f"#verification-{running.pk}")
    expect(card.get_by_test_id("verification-progress")).to_contain_text(
        f"{entries // 2} of {entries} entries verified"
    )
    expect(page.get_by_test_id("verify-button")).to_be_disabled()
    page.screenshot(path=SCREENSHOTS / "ledger-running.png", full_page=True)

    LedgerVerification.objects.filter(pk=running.pk).update(
        status="passed", verified=entries, finished_at=timezone.now()
    )
    # The card polls every 2 s and stops once the run has finished.
    expect(card.get_by_test_id("verification-status")).to_have_text("Passed", timeout=6000)

    page.reload()
    page.get_by_role("button", name="Verify the whole ledger now").click()
    expect(page.get_by_text("Verification of the whole ledger started.")).to_be_visible()
    latest = LedgerVerification.objects.order_by("-pk").first()
    assert (latest.status, latest.verified, latest.requested_by) == ("passed", entries, auditor)
    expect(page.get_by_test_id("runs").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("runs").locator("tbody tr").first).to_contain_text("Erin")
    page.screenshot(path=SCREENSHOTS / "ledger-verified.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_test_id("export-link").click()
    assert download.value.suggested_filename.startswith("signoff-ledger-")
    lines = download.value.path().read_text().splitlines()
    assert json.loads(lines[0])["entries"] == entries
    assert len(lines) == entries + 1

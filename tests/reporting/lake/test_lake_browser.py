"""An auditor opens the data-lake page after an export and after a failed one."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from reporting.lake.exporter import export_lake
from reporting.lake.models import LakeExport

# Debian's Chromium, as every browser test launches it (fixtures of tests/browser/).
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_sees_where_the_export_stands_and_what_it_wrote(
    page: Page, live_server, production_release, auditor, lake
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    run = export_lake()

    sign_in(page, base, "erin")
    page.goto(f"{base}/lake/")
    expect(page.get_by_role("heading", name="Data-lake export")).to_be_visible()
    card = page.get_by_test_id("destination")
    expect(card.get_by_test_id("watermark")).to_have_text(f"entry #{run.through_seq}")
    expect(card.get_by_test_id("behind")).to_have_text("0 entries")
    expect(card.get_by_test_id("last-status")).to_have_text("Done")
    card.get_by_text("Files the last run wrote").click()
    for name in run.files:
        expect(card.get_by_test_id("files")).to_contain_text(name)
    page.screenshot(path=SCREENSHOTS / "lake-status.png", full_page=True)

    LakeExport.objects.create(
        destination="lake",
        from_seq=run.through_seq,
        through_seq=run.through_seq,
        status="failed",
        error="LakeError: No storage named 'archive' in STORAGES",
    )
    page.reload()
    expect(card.get_by_test_id("last-status")).to_have_text("Failed")
    expect(card.get_by_test_id("last-error")).to_contain_text("No storage named 'archive'")
    expect(page.get_by_test_id("run")).to_have_count(2)

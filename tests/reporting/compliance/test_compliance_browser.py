"""An auditor asks for a long period's report, watches it being written, and downloads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from config.celery import app
from reporting.models import ReportExport
from reporting.tasks import compliance_export_task
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in
from tests.reporting.compliance.seed import day, request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_downloads_a_60_day_pdf_once_the_worker_has_written_it(
    page: Page, live_server, org, service, production, pipeline_bot, auditor, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    for _ in range(3):
        request(service, production, pipeline_bot, triggered_by="dave")
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    sign_in(page, base, "erin")
    page.goto(f"{base}{reverse('reporting:compliance')}")
    expect(page.get_by_role("heading", name="Compliance reports")).to_be_visible()
    page.select_option("#framework", value="SOX")
    page.fill("#from", day(-59).isoformat())
    page.fill("#to", day(0).isoformat())
    page.screenshot(path=SCREENSHOTS / "compliance-report-form.png", full_page=True)
    page.get_by_role("button", name="PDF").click()

    expect(page.get_by_test_id("export-status")).to_have_text("Queued")
    export = ReportExport.objects.get()
    assert page.url == f"{base}{reverse('reporting:export', args=[export.pk])}"
    # The worker's part, run here; the page's poll (every 2 s) shows the result by itself.
    compliance_export_task(export.pk)
    expect(page.get_by_test_id("export-status")).to_have_text("Done: 3 of 3 releases")
    page.screenshot(path=SCREENSHOTS / "compliance-report-export.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_test_id("export-download").click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    assert download.value.suggested_filename.startswith("compliance-sox-")
    # No worker listens on this test run's broker: drop the message the request enqueued.
    app.control.purge()

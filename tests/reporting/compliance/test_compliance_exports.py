"""Periods longer than 31 days: the report is written by a worker, with its progress shown."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from reporting.compliance.exports import run_compliance_export
from reporting.models import ReportExport
from reporting.tasks import compliance_export_task
from tests import factories
from tests.reporting.compliance.seed import day, request

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def sixty_days() -> dict[str, str]:
    """The last sixty days, as of when the test runs (not when the file was collected: a run
    that passes midnight would otherwise ask for yesterday and find nothing)."""
    return {"framework": "sox", "from": day(-59).isoformat(), "to": day(0).isoformat()}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def releases(org, service, production, pipeline_bot):
    return [request(service, production, pipeline_bot, triggered_by="dave") for _ in range(3)]


def test_a_60_day_period_is_queued_and_the_browser_follows_its_progress(
    client, auditor, releases, django_capture_on_commit_callbacks
):
    client.force_login(auditor)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.get(reverse("reporting:compliance_csv"), sixty_days())

    export = ReportExport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("reporting:export", args=[export.pk])
    assert len(callbacks) == 1  # the task is enqueued once the row is committed
    assert (export.requested_by, export.kind, export.format, export.status) == (
        auditor,
        "compliance",
        "csv",
        "queued",
    )
    assert export.parameters == {
        "framework": "SOX",
        "from": sixty_days()["from"],
        "to": sixty_days()["to"],
    }
    page = client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 2s"' in page
    assert "Queued" in page
    assert reverse("reporting:export_download", args=[export.pk]) not in page


def test_the_task_writes_the_file_with_its_progress_and_the_requester_downloads_it(
    client, auditor, releases, django_capture_on_commit_callbacks
):
    client.force_login(auditor)
    with django_capture_on_commit_callbacks(execute=False):
        client.get(reverse("reporting:compliance_csv"), sixty_days())
    export = ReportExport.objects.get()

    assert compliance_export_task(export.pk) == "done"

    export.refresh_from_db()
    assert (export.status, export.rows_done, export.rows_total) == ("done", 3, 3)
    assert export.finished_at is not None
    assert export.file.name.startswith("reports/compliance-sox-")
    partial = client.get(reverse("reporting:export", args=[export.pk]), HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in partial.content.decode()  # polling stops when done
    assert "3 of 3 releases" in partial.content.decode()
    download = client.get(reverse("reporting:export_download", args=[export.pk]))
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    lines = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert lines[0][0] == "change_ref"
    assert [line[0] for line in lines[1:]] == [r.change.ref for r in releases]


def test_a_task_delivered_twice_writes_the_file_once(
    client, auditor, releases, django_capture_on_commit_callbacks
):
    client.force_login(auditor)
    with django_capture_on_commit_callbacks(execute=False):
        client.get(reverse("reporting:compliance_pdf"), sixty_days())
    export = ReportExport.objects.get()
    assert run_compliance_export(export.pk) == "done"
    written = ReportExport.objects.get().file.name

    assert run_compliance_export(export.pk) == "not queued"

    assert ReportExport.objects.get().file.name == written


def test_with_a_token_the_answer_is_202_and_the_eager_task_has_written_the_pdf(
    client, auditor, releases, eager, django_capture_on_commit_callbacks
):
    token = factories.token_for(auditor)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(reverse("reporting:compliance_pdf"), sixty_days(), **bearer)

    export = ReportExport.objects.get()
    body = json.loads(response.content)
    assert response.status_code == 202
    assert body["id"] == export.pk
    assert body["status"] == "queued"  # as it was when the answer was written
    assert body["status_url"] == f"http://testserver/reports/exports/{export.pk}/"
    assert body["url"] == f"http://testserver/reports/exports/{export.pk}/download"
    status = json.loads(client.get(body["status_url"], **bearer).content)
    assert (status["status"], status["ready"], status["rows_done"]) == ("done", True, 3)
    download = client.get(body["url"], **bearer)
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"%PDF")


def test_an_export_still_running_has_no_file_to_download(
    client, auditor, releases, django_capture_on_commit_callbacks
):
    client.force_login(auditor)
    with django_capture_on_commit_callbacks(execute=False):
        client.get(reverse("reporting:compliance_csv"), sixty_days())
    export = ReportExport.objects.get()

    response = client.get(reverse("reporting:export_download", args=[export.pk]))

    assert response.status_code == 409
    assert response.content.decode() == "The export is queued; it has no file yet."


def test_a_failing_export_says_why(client, auditor, django_capture_on_commit_callbacks):
    export = ReportExport.objects.create(
        requested_by=auditor, kind="compliance", format="csv", parameters={"framework": "SOX"}
    )

    assert run_compliance_export(export.pk) == "failed"

    export.refresh_from_db()
    assert (export.status, export.error) == ("failed", "KeyError: 'from'")
    client.force_login(auditor)
    page = client.get(reverse("reporting:export", args=[export.pk])).content.decode()
    assert "The export failed" in page
    assert "hx-trigger" not in page


def test_a_period_of_31_days_answers_at_once(client, auditor, releases):
    client.force_login(auditor)
    month = {"framework": "sox", "from": day(-30).isoformat(), "to": day(0).isoformat()}

    response = client.get(reverse("reporting:compliance_csv"), month)

    assert response.status_code == 200
    assert ReportExport.objects.count() == 0

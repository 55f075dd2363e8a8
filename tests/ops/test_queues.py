"""Every task runs on the queue of its kind, and a task handed out twice does its work once."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from config.celery import app
from config.queues import DEFAULT, QUEUE_NAMES, ROUTES
from governance.authority.models import AccessReview
from governance.ledger import verification
from governance.ledger.models import LedgerVerification
from governance.tasks import start_access_review_task
from reporting.compliance.exports import run_compliance_export
from reporting.models import ReportExport
from tests.ops.conftest import ROOT


def project_tasks() -> list[str]:
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def test_every_task_of_the_project_is_routed_to_the_queue_of_its_kind():
    tasks = project_tasks()
    queues = {name: app.amqp.router.route({}, name)["queue"].name for name in tasks}
    # Nothing lands on `default` by accident: a new task must be given its queue.
    assert {
        name for name, queue in queues.items() if queue not in QUEUE_NAMES or queue == DEFAULT
    } == set()
    assert sorted(ROUTES) == tasks  # and no route names a task that does not exist
    assert queues["governance.tasks.deliver_outbox_task"] == "outbound"
    assert queues["reporting.tasks.compliance_export_task"] == "reports"
    assert queues["approvals.tasks.expire_requests_task"] == "sweeps"
    assert queues["approvals.verification.tasks.verify_deployments_task"] == "verification"


def test_beat_schedules_only_registered_tasks():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled - set(project_tasks()) == set()


def test_the_make_run_worker_consumes_every_queue():
    [queues] = re.findall(r"--queues=(\S+)", (ROOT / "bin" / "run-all").read_text())
    assert sorted(queues.split(",")) == sorted(QUEUE_NAMES)


@pytest.mark.django_db
def test_a_redelivered_export_takes_over_the_dead_workers_claim_and_a_finished_one_stays(
    auditor, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    parameters = {"framework": "SOX", "from": "2026-01-01", "to": "2026-03-31"}
    export = ReportExport.objects.create(
        requested_by=auditor, kind="compliance", format="csv", parameters=parameters
    )
    ReportExport.objects.filter(pk=export.pk).update(status="running")  # its worker died

    assert run_compliance_export(export.pk) == "not queued"  # a live duplicate: hands off
    assert run_compliance_export(export.pk, redelivered=True) == "done"
    assert run_compliance_export(export.pk, redelivered=True) == "not queued"
    assert [path.name for path in (tmp_path / "reports").iterdir()] == [
        "compliance-sox-20260101-20260331.csv"
    ]


@pytest.mark.django_db
def test_a_redelivered_ledger_verification_takes_over_the_dead_workers_run(auditor):
    run = LedgerVerification.objects.create(requested_by=auditor, status="running")

    assert verification.run_verification(run.pk) is None
    assert verification.run_verification(run.pk, redelivered=True).status == "passed"
    assert verification.run_verification(run.pk, redelivered=True) is None
    assert LedgerVerification.objects.get().status == "passed"


@pytest.mark.django_db
def test_the_quarterly_access_review_run_twice_opens_one_campaign(org):
    first = start_access_review_task()
    assert start_access_review_task() == first
    assert AccessReview.objects.count() == 1

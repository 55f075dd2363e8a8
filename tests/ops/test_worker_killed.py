"""A worker killed mid-task loses nothing: tasks are acknowledged late, so the broker hands the
task out again, and the task claims its work so that the effect happens once."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection, transaction

from approvals.models import Release
from reporting.models import ReportExport
from tests.ops.processes import eventually, manage
from tests.ops.servers import CeleryWorker, RedisServer, worker_environment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Seconds an unacknowledged task waits before it is handed out again (production: an hour).
VISIBILITY_TIMEOUT = "2"
TASK = "reporting.tasks.compliance_export_task"
QUEUE_EXPORT = """
from governance.models import User
from reporting.compliance.report import ReportQuery
from reporting.compliance.services import queue_compliance_export
period = {{"framework": "SOX", "from": "2000-01-01", "to": "2100-01-01"}}
query = ReportQuery.from_parameters(period)
auditor = User.objects.get(pk={auditor})
print(queue_compliance_export(query=query, format="csv", actor=auditor).pk)
"""


@pytest.fixture
def broker(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_an_export_whose_worker_was_killed_is_written_once_by_the_next_worker(
    broker, production_release, auditor, settings, tmp_path
):
    env = worker_environment(
        tmp_path,
        broker.url(),
        CELERY_VISIBILITY_TIMEOUT=VISIBILITY_TIMEOUT,
        MEDIA_ROOT=settings.MEDIA_ROOT,
    )
    # Queued by a process of its own on the test's Redis, as a web process queues it: this
    # process's Celery app keeps its broker connections for the suite's Redis.
    queued = manage(env, "shell", "-c", QUEUE_EXPORT.format(auditor=auditor.pk))
    export = ReportExport.objects.get(pk=int(queued.split()[-1]))

    with transaction.atomic():
        # Hold the releases table: the worker claims the export, then waits on its first read.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Release._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        first = CeleryWorker(env, tmp_path / "worker-1.log")
        eventually(lambda: _running_and_waiting(export), 60, "the export to be mid-way")
        first.kill()
    export.refresh_from_db()
    assert (export.status, export.file.name, export.rows_total) == ("running", "", None)
    assert first.output().count(f"Task {TASK}[") == 1  # received, never finished

    second = CeleryWorker(env, tmp_path / "worker-2.log")
    try:
        eventually(lambda: "succeeded" in second.output(), 30, "the task to run again")
    finally:
        second.stop()

    export.refresh_from_db()
    assert (export.status, export.rows_done, export.rows_total) == ("done", 1, 1)
    [written] = (tmp_path / "media" / "reports").iterdir()  # one file, not two
    assert export.file.name == f"reports/{written.name}"
    rows = list(csv.DictReader(io.StringIO(written.read_text())))
    assert [row["version"] for row in rows] == [production_release.version]
    assert second.output().count(f"Task {TASK}[") == 2  # received, then succeeded


def _running_and_waiting(export: ReportExport) -> bool:
    """The export is claimed and its worker's query waits on a lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # activity is cached per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        waiting = cursor.fetchone()[0]
    status = ReportExport.objects.filter(pk=export.pk).values_list("status", flat=True).get()
    return status == "running" and waiting > 0

"""`make load`'s machinery: the commands it reads from compose.yaml, the replicas it runs, the
clients spreading requests over them, the CPU it counts; and the ledger append benchmark."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import ledger_appends
from benchmarks.load import configurations, parse_args
from benchmarks.load_clients import Api, Journal
from benchmarks.load_processes import BIN, group_cpu_seconds, local_command, read_layout
from governance.ledger import services as ledger
from governance.models import LedgerEntry
from tests.stubs import Receiver

COMPOSE = """\
x-app: &app
  image: signoff:local
services:
  postgres:
    image: postgres:15
    command: ["postgres", "-c", "fsync=on"]
  schema:
    <<: *app
    command: ["python", "manage.py", "migrate", "--no-input"]
  frontend:
    <<: *app
    command: gunicorn -c config/gunicorn.conf.py config.wsgi
  jobs:
    <<: *app
    command:
      - celery
      - -A
      - config
      - worker
      - --queues
      - outbound,default
  scheduler:
    <<: *app
    command: ["celery", "-A", "config", "beat", "--schedule", "/tmp/celerybeat-schedule"]
"""


def test_layout_is_read_from_the_compose_services_by_what_they_run(tmp_path):
    compose = tmp_path / "compose.yaml"
    compose.write_text(COMPOSE)

    layout = read_layout(compose)

    assert layout.web == ("gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi")
    assert layout.worker == ("celery", "-A", "config", "worker", "--queues", "outbound,default")
    assert layout.beat == (
        "celery",
        "-A",
        "config",
        "beat",
        "--schedule",
        "/tmp/celerybeat-schedule",
    )
    assert layout.source == "compose.yaml"


def test_compose_file_without_a_beat_service_is_refused(tmp_path):
    compose = tmp_path / "compose.yaml"
    compose.write_text(COMPOSE.split("  scheduler:")[0])

    with pytest.raises(SystemExit, match=r"compose\.yaml has no service running beat"):
        read_layout(compose)


def test_without_a_compose_file_the_decided_layout_runs(tmp_path):
    layout = read_layout(tmp_path / "compose.yaml")

    assert layout.web == ("gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi")
    assert layout.worker[3:6] == (
        "worker",
        "--queues",
        "outbound,verification,sweeps,reports,default",
    )
    assert layout.source == "the decided layout (no compose.yaml)"


def test_commands_run_from_the_virtualenv_with_the_load_tests_options_last():
    command = local_command(("gunicorn", "-c", "config/gunicorn.conf.py"), "--bind=127.0.0.1:9")

    assert command == [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "--bind=127.0.0.1:9"]


def test_replicas_run_after_one_web_and_one_worker_with_the_same_sizes():
    single = configurations(parse_args([]))
    both = configurations(parse_args(["--web-replicas", "2", "--worker-replicas", "3"]))

    assert [(c.web, c.workers) for c in single] == [(1, 1)]
    assert [(c.web, c.workers) for c in both] == [(1, 1), (2, 3)]
    assert [c.label for c in both] == ["1 web + 1 worker", "2 web + 3 workers"]
    assert {(c.gunicorn_workers, c.threads, c.concurrency) for c in both} == {(2, 4, 2)}


def test_requests_go_to_each_web_replica_in_turn():
    first, second = Receiver(status=201).start(), Receiver(status=201).start()
    journal = Journal()
    api = Api([first.server.server_port, second.server.server_port], 5, journal)
    try:
        for release in range(1, 6):
            api.call("POST deployments", "POST", f"/d/{release}", "token", body={})
    finally:
        first.stop()
        second.stop()

    assert [r.path for r in first.received] == ["/d/1", "/d/3", "/d/5"]
    assert [r.path for r in second.received] == ["/d/2", "/d/4"]
    assert [(s.status, s.expected) for s in journal.samples] == [(201, True)] * 5


def test_cpu_of_a_process_group_counts_its_children():
    # A parent that waits for a child burning 0.3 CPU s: the group's time includes the child's.
    burn = (
        "import subprocess, sys, time; subprocess.run([sys.executable, '-c', "
        "'import time\\nwhile time.process_time() < 0.3: pass']); time.sleep(30)"
    )
    process = subprocess.Popen([sys.executable, "-c", burn], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while group_cpu_seconds(process.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.1)
        used = group_cpu_seconds(process.pid)
    finally:
        process.kill()
        process.wait()

    assert 0.3 <= used < 2.0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ledger_append_benchmark_appends_through_the_service_and_the_chain_verifies(settings):
    figures = ledger_appends.measure(
        mode="work, then append (deferred)",
        writers=2,
        seconds=0.5,
        work_ms=1,
        url=_database_url(settings),
    )

    assert figures.appends == LedgerEntry.objects.filter(kind="benchmark.append").count()
    assert figures.appends > 0
    assert ledger.verify() == (figures.appends, None)


def _database_url(settings) -> str:
    database = settings.DATABASES["default"]
    host, port = database.get("HOST") or "127.0.0.1", database.get("PORT") or 5432
    return f"postgres://{database['USER']}@{host}:{port}/{database['NAME']}"


def test_append_figures_give_the_lock_wait_by_littles_law():
    figures = ledger_appends.AppendFigures(
        mode="append only",
        writers=4,
        appends=200,
        seconds=2.0,
        p50_ms=30.0,
        p95_ms=60.0,
        mean_waiting=2.5,
    )

    # 100 appends/s with 2.5 sessions waiting on average: each waited 25 ms.
    assert figures.per_second == 100.0
    assert figures.wait_ms == 25.0
    assert ledger_appends.markdown([figures], 5).splitlines()[2] == (
        "| append only | 4 | 100 | 30.0 ms | 60.0 ms | 2.50 | 25.0 ms |"
    )


def test_repository_compose_file_gives_the_load_test_its_three_commands():
    layout = read_layout(Path(__file__).resolve().parent.parent / "compose.yaml")

    assert layout.web[0] == "gunicorn"
    assert layout.worker[:4] == ("celery", "-A", "config", "worker")
    assert layout.beat[:4] == ("celery", "-A", "config", "beat")

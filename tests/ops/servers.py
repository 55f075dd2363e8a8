"""Real servers that fault tests may stop and start: a private Redis, a private PostgreSQL
cluster and Celery workers, each on a free port or in a folder of its own.

The shared PostgreSQL and Redis of the machine are never stopped: a test that needs an outage
makes one with these.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis
from django.db import connection
from kombu import pools as kombu_pools

from config.celery import app
from governance.notifications import outbox
from governance.notifications import services as notifications
from tests.ops.conftest import PYTHON, ROOT, base_environment, free_port
from tests.ops.processes import eventually

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
CELERY = str(Path(PYTHON).parent / "celery")
EVERY_QUEUE = "outbound,verification,sweeps,reports,default"


class RedisServer:
    """redis-server on a free port, without persistence; stop() and start() simulate an outage
    (the port stays the same, so clients configured with the URL find it again)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        eventually(lambda: _answers(client), 10, "redis-server to answer")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


class PostgresCluster:
    """A throw-away PostgreSQL 15 cluster (initdb in a temporary folder) on a free port.

    PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="signoff-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresCluster:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        eventually(self._answers, 30, "the private PostgreSQL to accept connections")
        return self

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended, as in a restart or a fail-over."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def query(self, sql: str) -> list[tuple]:
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(sql).fetchall()

    def _answers(self) -> bool:
        try:
            return self.query("SELECT 1") == [(1,)]
        except psycopg.OperationalError:
            return False

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        result = subprocess.run(
            [*self._as, str(POSTGRES_BIN / program), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert not check or result.returncode == 0, result.stdout + result.stderr


class CeleryWorker:
    """`celery -A config worker` on every queue, in a process group of its own so that a test
    can kill it whole (main process and pool) the way an out-of-memory kill or a lost node does.
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("a") as output:
            self.process = subprocess.Popen(
                [
                    *(CELERY, "-A", "config", "worker", f"--queues={EVERY_QUEUE}"),
                    *("--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle"),
                ],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        eventually(lambda: "ready." in self.output(), 60, f"the worker to start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL the whole group: nothing is acknowledged, nothing is handed back."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point Celery's broker and result store at `url`, and back; pools are rebuilt both ways."""
    saved = app.conf.broker_url, app.conf.result_backend
    # A kick the fixtures set off (their notifications) finishes first: swapping the pools under
    # it loses that send and can leave the next one on a half-reset connection.
    notifications.KICKER.wait_idle(timeout=15)
    outbox.KICKER.wait_idle(timeout=15)
    app.conf.broker_url = app.conf.result_backend = url
    drop_connections()
    try:
        yield
    finally:
        # Let a kick still in flight finish against the broker it started with.
        notifications.KICKER.wait_idle(timeout=15)
        outbox.KICKER.wait_idle(timeout=15)
        app.conf.broker_url, app.conf.result_backend = saved
        drop_connections()


def drop_connections() -> None:
    """Forget Celery's cached broker pools and result store, so the next send reads the URLs.

    Celery has no public call for this; the broker part is what it does after a fork.
    """
    # kombu keeps connection and producer pools in process-wide registries keyed by broker URL:
    # closing them without clearing the registries would leave a closed pool behind for every
    # later test that enqueues a task ("Acquire on closed pool").
    kombu_pools.reset()
    app._after_fork()
    # The result store's client is cached per thread: this thread's is rebuilt from the new URL.
    app._backend_cache = None
    vars(app._local).pop("backend", None)


def worker_environment(folder: Path, broker: str, **extra: str) -> dict[str, str]:
    """A worker's environment: this test run's database, the given broker, nothing else
    leaking in. The test must use a transactional database, so the worker sees its rows."""
    database = connection.settings_dict
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    return {
        **base_environment(folder),
        "DEBUG": "true",
        "SIGNOFF_ENV_FILE": "/dev/null",
        "DATABASE_URL": (
            f"postgres://{database['USER']}{password}@{database['HOST']}:{database['PORT']}"
            f"/{database['NAME']}"
        ),
        "REDIS_URL": broker,
        **extra,
    }

"""`make load`: a bounded load test of the whole running system, on this machine only.

python -m benchmarks.load [--clients 50] [--duration 60] [--output docs/benchmarks.md]

Prepares its own PostgreSQL database (dropped and recreated each run) and Redis database
(flushed), starts gunicorn and a Celery worker with beat on them with production settings, and
runs N concurrent clients against 127.0.0.1 for a bounded time: a pipeline requests a release
(with Idempotency-Key retries), polls the gate, approvers decide (with deliberate concurrent
duplicates), the pipeline reports the deployment. Both servers are always stopped, whatever
happens. Afterwards it checks against the database that every decision was recorded exactly
once and that the ledger verifies, prints PASS or FAIL (exit status 1 on FAIL) and writes the
figures to the load section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/signoff_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
HOST = "127.0.0.1"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BEGIN = "<!-- load:begin -->"
END = "<!-- load:end -->"
DECISION_P95_TARGET_MS = 500.0
REFUSED = frozenset({403, 409})  # a decision the service turned down: already decided, closed
START_TIMEOUT = 90.0  # seconds for gunicorn and the worker to come up on a busy machine
STOP_GRACE = 15.0  # seconds for a graceful stop before the process group is killed
LOG_TAIL = 40
EXPECTED_WARNINGS = ("Forbidden: /api/v1/releases/", "Conflict: /api/v1/releases/")

# Approval patterns on the service stage (two distinct approvals of three eligible people),
# cycled through by the clients. "duplicate" and "race" are the concurrency checks.
PATTERNS = (
    "pair",  # two approvers at the same moment: both count
    "duplicate",  # one approver twice at the same moment, then another: counted once
    "race",  # all three at the same moment: two count, the third is refused
    "sequential",  # one, the gate, then another
    "pair",
    "duplicate",
    "race",
    "sequential",
    "pair",
    "reject",  # one approver rejects: the release is rejected and not deployed
)


# --- the load section of docs/benchmarks.md (pure functions; report.py uses them too) ---


def extract_load_section(document: str) -> str | None:
    """The load section, markers included, or None when the document has none."""
    end = document.find(END)
    # The last begin marker before the end marker: a stray one further up is left alone.
    start = document.rfind(BEGIN, 0, end) if end >= 0 else -1
    if start < 0:
        return None
    return document[start : end + len(END)]


def replace_load_section(document: str, section: str) -> str:
    """`document` with its load section replaced by `section` (appended when it has none)."""
    old = extract_load_section(document)
    if old is not None:
        return document.replace(old, section, 1)
    return document.rstrip("\n") + "\n\n" + section + "\n"


# --- command line and environment ---


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (60)")
    parser.add_argument(
        "--iterations", type=int, default=1000, help="at most this many releases per client"
    )
    parser.add_argument(
        "--think",
        type=float,
        default=2.0,
        help="mean pause in seconds between a client's steps (2; 0: back to back, saturation)",
    )
    parser.add_argument("--timeout", type=float, default=30, help="per-request timeout (30 s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (4)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes (2)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print only, write no report")
    args = parser.parse_args(argv)
    if min(args.clients, args.iterations, args.workers, args.threads, args.concurrency) < 1:
        parser.error("--clients, --iterations, --workers, --threads, --concurrency must be >= 1")
    if not 1 <= args.duration <= 3600 or args.think < 0 or not 1 <= args.timeout <= 300:
        parser.error("--duration 1..3600 s, --timeout 1..300 s, --think >= 0")
    return args


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", flush=True)


def loopback_url(name: str, default: str) -> str:
    """The URL in environment variable `name`; refused unless it points at this machine."""
    url = os.environ.get(name) or default
    if urlsplit(url).hostname not in LOOPBACK:
        raise SystemExit(f"{name} must point at 127.0.0.1 (the load test stays on loopback): {url}")
    return url


def recreate_database(url: str) -> str:
    """Drop and create the load database, so every run starts from the same empty state."""
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    # A guard against a mistyped LOAD_DATABASE_URL: this drops the database without asking.
    if "load" not in name:
        raise SystemExit(f"LOAD_DATABASE_URL must name a database containing 'load': {name!r}")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        version = conn.execute("SHOW server_version").fetchone()[0]
        max_connections = conn.execute("SHOW max_connections").fetchone()[0]
    return f"{version} (max_connections {max_connections})"


def flush_redis(url: str) -> None:
    """Empty the load Redis database: broker queues, results and cache counters of old runs."""
    import redis

    if urlsplit(url).path.strip("/") in ("", "0"):
        raise SystemExit(f"LOAD_REDIS_URL must name a Redis database other than 0: {url}")
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_environment(
    args: argparse.Namespace, var_dir: Path, port: int, database_url: str, redis_url: str
) -> dict[str, str]:
    """Production-like settings, built from scratch so nothing leaks in from the caller's shell
    (a DATABASE_URL, a ledger key file, a checkpoint bucket)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(var_dir)),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SIGNOFF_VAR_DIR": str(var_dir),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LEDGER_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": HOST,
        "CSRF_TRUSTED_ORIGINS": f"https://{HOST}:{port}",
        "SITE_URL": f"http://{HOST}:{port}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "LOG_LEVEL": "WARNING",
        # One pooled connection per gunicorn thread is all a worker can use at once; it keeps
        # (workers + worker processes + beat + parent) x pool size well under max_connections.
        "DATABASE_POOL_MAX_SIZE": str(args.threads),
    }


def run_python(env: dict[str, str], *argv: str, timeout: float = 300) -> str:
    """Run `python <argv>` in the load environment; its stdout, or SystemExit with its output."""
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def load_seed(env: dict[str, str], command: str) -> dict:
    """`benchmarks/load_seed.py <command>` in a Django subprocess; its JSON answer."""
    output = run_python(env, "-m", "benchmarks.load_seed", command)
    return json.loads(output.strip().splitlines()[-1])


# --- the organisation the clients act as ---


@dataclass(frozen=True)
class Person:
    username: str
    token: str


@dataclass(frozen=True)
class LoadService:
    slug: str
    tier: int
    approvers: tuple[Person, ...]


@dataclass(frozen=True)
class Org:
    environment: str
    pipeline: Person
    developers: tuple[str, ...]
    cab: tuple[Person, ...]
    services: tuple[LoadService, ...]


def seed_org(env: dict[str, str]) -> Org:
    """Seed through the real services in a Django subprocess (benchmarks/load_seed.py)."""
    data = load_seed(env, "seed")

    def people(rows: list[dict]) -> tuple[Person, ...]:
        return tuple(Person(row["username"], row["token"]) for row in rows)

    return Org(
        environment=data["environment"],
        pipeline=Person(**data["pipeline"]),
        developers=tuple(data["developers"]),
        cab=people(data["cab"]),
        services=tuple(
            LoadService(s["slug"], s["tier"], people(s["approvers"])) for s in data["services"]
        ),
    )


# --- servers: own process groups, always stopped ---


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = LOG_TAIL) -> str:
        """The last lines of the log, without Django's one-line warnings for 403 and 409
        answers: the refused duplicate decisions are expected and would hide everything else."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        kept = [line for line in text.splitlines() if not line.startswith(EXPECTED_WARNINGS)]
        return "\n".join(kept[-lines:])


def start_server(name: str, command: list[str], env: dict[str, str], log_path: Path) -> Server:
    """Start `command` in its own session, so that a terminal's Ctrl-C reaches only this script
    (which then stops it cleanly) and the whole group can be killed as one."""
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, process, log_path)


def stop_server(server: Server) -> None:
    """SIGTERM to the main process (gunicorn drains, Celery finishes running tasks), a bounded
    wait, then SIGKILL for whatever is left of its process group (pool children included)."""
    process = server.process
    if process.poll() is None:
        # Only the main process: signalling Celery's pool children directly aborts their tasks.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            log(f"{server.name} did not stop within {STOP_GRACE:.0f} s; killing its group")
    # The group is gone already (ProcessLookupError) when every process in it has exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log(f"{server.name} (pid {process.pid}) is still running after SIGKILL")


@contextmanager
def running_servers(args: argparse.Namespace, env: dict[str, str], var_dir: Path, port: int):
    """gunicorn and a Celery worker with embedded beat, ready; stopped on the way out."""
    servers: list[Server] = []
    try:
        servers.append(
            start_server(
                "gunicorn",
                [
                    str(BIN / "gunicorn"),
                    "config.wsgi:application",
                    f"--bind={HOST}:{port}",
                    f"--workers={args.workers}",
                    f"--threads={args.threads}",
                    "--timeout=60",
                    "--graceful-timeout=10",
                    # Pipelines and people rarely keep connections open between steps.
                    "--keep-alive=5",
                    # Its default socket lives in $HOME, shared with anyone else's gunicorn.
                    "--no-control-socket",
                ],
                env,
                var_dir / "gunicorn.log",
            )
        )
        servers.append(
            start_server(
                "celery",
                [
                    str(BIN / "celery"),
                    "-A",
                    "config",
                    "worker",
                    "-B",
                    f"--concurrency={args.concurrency}",
                    "--loglevel=info",
                    "--hostname=load@%h",
                    f"--schedule={var_dir / 'celerybeat-schedule'}",
                ],
                env,
                var_dir / "celery.log",
            )
        )
        wait_ready(servers, port)
        yield servers
    finally:
        for server in reversed(servers):
            stop_server(server)


def wait_ready(servers: list[Server], port: int) -> None:
    """Until /readyz answers 200 (database, broker, static files) and the worker says ready."""
    deadline = time.monotonic() + START_TIMEOUT
    web_ready = worker_ready = False
    while not (web_ready and worker_ready):
        for server in servers:
            if server.process.poll() is not None:
                raise SystemExit(f"{server.name} exited during start-up:\n{server.tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {s.name} ---\n{s.tail()}" for s in servers)
            raise SystemExit(f"servers not ready within {START_TIMEOUT:.0f} s:\n{tails}")
        web_ready = web_ready or _ready(port)
        worker_ready = worker_ready or " ready." in servers[1].log.read_text(errors="replace")
        time.sleep(0.3)


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", "/readyz", headers={"X-Forwarded-Proto": "https"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


# --- HTTP client and what it records ---


@dataclass(frozen=True)
class Sample:
    endpoint: str
    status: int  # 0: no answer (connection refused, reset or timed out)
    seconds: float
    expected: bool


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


@dataclass
class Journal:
    """Every request's timing, and what the clients were told, for the checks afterwards."""

    samples: list[Sample] = field(default_factory=list)
    # (release id, approver, HTTP status) of every decision sent.
    decisions: list[tuple[int, str, int]] = field(default_factory=list)
    # Idempotency-Key -> [(HTTP status, release id or None)] of every request sent with it.
    creations: dict[str, list[tuple[int, int | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (release id, HTTP status) of every deployment reported.
    deployments: list[tuple[int, int]] = field(default_factory=list)
    # What did not go as the scenario expects (a wrong count of 201s, a wrong gate answer).
    anomalies: list[str] = field(default_factory=list)
    # A few bodies of unexpected answers per (endpoint, status), to say what went wrong.
    examples: dict[tuple[str, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    # Share of the machine's CPU time that was busy while the clients ran (anyone's processes).
    machine_busy: float = float("nan")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attribute: str, item: Any) -> None:
        with self.lock:
            getattr(self, attribute).append(item)


class Api:
    """The pipeline API over loopback, one connection per request (as pipelines' curl does),
    with a timeout; every request is timed and recorded, none raises."""

    EXPECTED = {
        "POST releases": {201},
        # A retry afterwards (200), or one of two sent at the same moment (either may win).
        "POST releases (same key)": {200, 201},
        "GET gate": {200},
        "POST decisions": {201, *REFUSED},
        "POST deployments": {201},
    }

    def __init__(self, port: int, timeout: float, journal: Journal) -> None:
        self.port, self.timeout, self.journal = port, timeout, journal

    def call(
        self,
        endpoint: str,
        method: str,
        path: str,
        token: str,
        body: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        # What a TLS-terminating proxy adds: production settings redirect plain HTTP to HTTPS.
        sent = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "X-Forwarded-Proto": "https",
            **(headers or {}),
        }
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            status, raw = 0, f"{exc.__class__.__name__}: {exc}".encode()
        finally:
            connection.close()
        seconds = time.perf_counter() - started
        expected = status in self.EXPECTED[endpoint]
        self.journal.add("samples", Sample(endpoint, status, seconds, expected))
        if not expected:
            self._keep_example(endpoint, status, raw)
        try:
            parsed = json.loads(raw) if status else {}
        except ValueError:
            parsed = {}
        return Answer(status, parsed if isinstance(parsed, dict) else {})

    def _keep_example(self, endpoint: str, status: int, raw: bytes) -> None:
        with self.journal.lock:
            kept = self.journal.examples[(endpoint, status)]
            if len(kept) < 3:
                kept.append(raw[:500].decode(errors="replace"))


def parallel(calls: list[Callable[[], T]], timeout: float) -> list[T | None]:
    """Run `calls` at the same moment, one thread each, lined up on a barrier; results in order
    (None for one still running after `timeout`, which the per-request timeout prevents)."""
    barrier = threading.Barrier(len(calls))
    results: list[T | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        # A broken barrier starts the call anyway: a late thread makes the race milder, not wrong.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)
        results[index] = call()

    threads = [
        threading.Thread(target=run, args=(i, call), daemon=True) for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results


# --- one client: a pipeline and the people who decide its releases ---


@dataclass
class Client:
    index: int
    org: Org
    api: Api
    journal: Journal
    stop: threading.Event
    think: float
    timeout: float
    rng: random.Random

    def pause(self) -> None:
        """Think time between steps; returns early when the run is being stopped."""
        if self.think:
            self.stop.wait(self.think * self.rng.uniform(0.5, 1.5))

    def run(self, deadline: float, iterations: int) -> None:
        """Pipeline runs back to back until the deadline (a run in progress is finished)."""
        for iteration in range(iterations):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            self.release_cycle(iteration)

    def release_cycle(self, iteration: int) -> None:
        """Request, gate, service approvals, (CAB,) gate, deployment."""
        service = self.org.services[(self.index + iteration) % len(self.org.services)]
        pattern = PATTERNS[(self.index * 7 + iteration) % len(PATTERNS)]
        key = f"load-{self.index}-{iteration}"
        body = self.release_body(service, key, iteration)
        release = self.request_release(key, body, retry=iteration % 4)
        if release is None:
            return
        digest = body["artifact"]["digest"]
        self.pause()
        self.expect_gate(release, "pending", "after the request")
        self.pause()
        if not self.service_stage(release, digest, service, pattern):
            return
        if service.tier == 1:
            self.expect_gate(release, "pending", "waiting for the CAB")
            self.pause()
            self.cab_stage(release, digest, both=iteration % 2 == 0)
            self.pause()
        self.expect_gate(release, "approved", "before deploying", digest=digest)
        self.pause()
        answer = self.api.call(
            "POST deployments",
            "POST",
            f"/api/v1/releases/{release}/deployments/",
            self.org.pipeline.token,
            body={"status": "succeeded", "digest": digest, "url": "https://ci.example.com/d"},
        )
        self.journal.add("deployments", (release, answer.status))
        if answer.status == 201 and not answer.body.get("deployment", {}).get("approved"):
            self.anomaly(release, f"deployment recorded as unapproved: {answer.body}")
        self.pause()

    def release_body(self, service: LoadService, key: str, iteration: int) -> dict:
        digest = "sha256:" + hashlib.sha256(f"{key}-{time.time()}".encode()).hexdigest()
        return {
            "service": service.slug,
            "environment": self.org.environment,
            "version": f"{iteration + 1}.{self.index}.0",
            "artifact": {"image": f"registry.example.com/load/{service.slug}", "digest": digest},
            "change": {"ref": f"CHG-{key}", "type": "normal", "title": "Load test release"},
            "pipeline": {
                "provider": "load",
                "run_url": f"https://ci.example.com/load/{key}",
                # The developer behind the run: a person who may never approve it.
                "triggered_by": self.org.developers[iteration % len(self.org.developers)],
            },
            "evidence": [{"kind": "tests", "status": "passed", "summary": {"failed": 0}}],
        }

    def request_release(self, key: str, body: dict, retry: int) -> int | None:
        """POST the release; retry 1: a concurrent duplicate, 3: a retry afterwards, same key."""
        token = self.org.pipeline.token

        def post(endpoint: str) -> Callable[[], Answer]:
            headers = {"Idempotency-Key": key}
            return lambda: self.api.call(
                endpoint, "POST", "/api/v1/releases/", token, body, headers
            )

        if retry == 1:
            same = post("POST releases (same key)")
            answers = parallel([same, same], self.timeout + 5)
        else:
            answers = [post("POST releases")()]
            if retry == 3 and answers[0].status == 201:
                answers.append(post("POST releases (same key)")())
        ids = set()
        for answer in answers:
            status = answer.status if answer else 0
            release = answer.body.get("id") if answer else None
            with self.journal.lock:
                self.journal.creations[key].append((status, release))
            ids.add(release)
        statuses = sorted(a.status if a else 0 for a in answers)
        if statuses.count(201) != 1 or len(ids) != 1 or None in ids:
            self.anomaly(
                None, f"key {key}: statuses {statuses}, release ids {sorted(map(str, ids))}"
            )
            return None
        return ids.pop()

    def decide(self, release: int, person: Person, digest: str, verdict: str = "approve"):
        def send() -> Answer:
            answer = self.api.call(
                "POST decisions",
                "POST",
                f"/api/v1/releases/{release}/decisions/",
                person.token,
                body={
                    "decision": verdict,
                    "rationale": f"Load test: reviewed {digest[7:19]} ({verdict})",
                    "digest": digest,
                },
            )
            self.journal.add("decisions", (release, person.username, answer.status))
            return answer

        return send

    def decide_together(self, release: int, people: list[Person], digest: str) -> list[int]:
        """Decisions sent at the same moment; their HTTP statuses in order."""
        calls = [self.decide(release, person, digest) for person in people]
        return [a.status if a else 0 for a in parallel(calls, self.timeout + 5)]

    def service_stage(self, release: int, digest: str, service: LoadService, pattern: str) -> bool:
        """The service approvers' stage (two of three); False when the release was rejected."""
        first, second, third = service.approvers
        if pattern == "reject":
            self.check(release, "reject", [self.decide(release, first, digest, "reject")().status])
            self.pause()
            self.expect_gate(release, "rejected", "after a rejection")
            # A late approval of a rejected release changes nothing.
            late = self.decide(release, second, digest)().status
            if late not in REFUSED:
                self.anomaly(release, f"approval after rejection answered {late}")
            return False
        if pattern == "pair":
            statuses = self.decide_together(release, [first, second], digest)
            self.check(release, pattern, statuses, created=2)
        elif pattern == "duplicate":
            statuses = self.decide_together(release, [first, first], digest)
            self.check(release, pattern, statuses, created=1)
            self.pause()
            self.check(release, pattern, [self.decide(release, second, digest)().status])
        elif pattern == "race":
            statuses = self.decide_together(release, [first, second, third], digest)
            self.check(release, pattern, statuses, created=2)
        else:
            self.check(release, pattern, [self.decide(release, first, digest)().status])
            self.pause()
            self.expect_gate(release, "pending", "after one of two approvals")
            self.pause()
            self.check(release, pattern, [self.decide(release, second, digest)().status])
        self.pause()
        return True

    def cab_stage(self, release: int, digest: str, both: bool) -> None:
        """One CAB approval needed: sometimes both members at once, and only one counts."""
        people = list(self.org.cab) if both else [self.org.cab[self.index % len(self.org.cab)]]
        self.check(release, "cab", self.decide_together(release, people, digest), created=1)

    def check(self, release: int, step: str, statuses: list[int], created: int = 1) -> None:
        """Exactly `created` decisions accepted (201), every other one refused (403/409)."""
        refused = sum(status in REFUSED for status in statuses)
        if statuses.count(201) != created or refused != len(statuses) - created:
            self.anomaly(
                release, f"{step}: decisions answered {statuses}, {created} x 201 expected"
            )

    def expect_gate(self, release: int, status: str, when: str, digest: str | None = None) -> None:
        path = f"/api/v1/releases/{release}/gate" + (f"?digest={digest}" if digest else "")
        answer = self.api.call("GET gate", "GET", path, self.org.pipeline.token)
        if answer.status == 200 and answer.body.get("status") != status:
            reasons = "; ".join(answer.body.get("reasons", []))[:300]
            self.anomaly(release, f"gate {when}: {answer.body.get('status')} ({reasons})")

    def anomaly(self, release: int | None, message: str) -> None:
        self.journal.add("anomalies", f"release {release}: {message}" if release else message)


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def ramp_up(args: argparse.Namespace) -> float:
    """Seconds over which the clients start: one second, plus two think times when they pause
    (their steps then spread out on their own), at most a quarter of the run."""
    return min(args.duration / 4, 1.0 + 2 * args.think)


def run_clients(
    args: argparse.Namespace, org: Org, port: int, journal: Journal
) -> tuple[float, float]:
    """N clients for the duration; the wall-clock seconds the load lasted, and the CPU seconds
    the clients themselves used (they share the machine's cores with the servers)."""
    api = Api(port, args.timeout, journal)
    stop = threading.Event()
    cpu_started = time.process_time()
    machine_started = cpu_times()
    started = time.monotonic()
    deadline = started + args.duration
    clients = [
        Client(i, org, api, journal, stop, args.think, args.timeout, random.Random(i))
        for i in range(args.clients)
    ]

    ramp = ramp_up(args)

    def start(client: Client) -> None:
        # Starts spread over the ramp-up: 50 release requests at the same instant would measure
        # one synchronised burst, not the steady load.
        stop.wait(ramp * client.index / args.clients)
        client.run(deadline, args.iterations)

    threads = [
        threading.Thread(target=start, args=(c,), name=f"client-{c.index}", daemon=True)
        for c in clients
    ]
    for thread in threads:
        thread.start()
    # A cycle in progress at the deadline is finished; each of its requests is bounded by the
    # timeout, so this bound is never reached unless something hangs.
    hard_stop = deadline + 20 * args.timeout
    try:
        for thread in threads:
            while thread.is_alive() and time.monotonic() < hard_stop:
                thread.join(0.5)  # short joins keep Ctrl-C responsive
    finally:
        stop.set()
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        journal.add("anomalies", f"clients still running at the hard stop: {', '.join(stuck)}")
    busy, total = (now - then for now, then in zip(cpu_times(), machine_started, strict=True))
    journal.machine_busy = busy / total if total else float("nan")
    return time.monotonic() - started, time.process_time() - cpu_started


class LockSampler:
    """Which tables sessions of the load database wait on for a lock, sampled once a second
    from pg_stat_activity while the clients run: the figures say where requests queue."""

    QUERY = (
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"')

    def __init__(self, url: str) -> None:
        self.url = url
        self.waits: Counter = Counter()
        self.samples = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                while not self._stop.wait(1.0):
                    rows = conn.execute(self.QUERY).fetchall()
                    self.samples += 1
                    for (query,) in rows:
                        found = self.TABLE.search(query or "")
                        self.waits[found[1] if found else "other"] += 1
        except psycopg.Error as exc:
            self.error = f"{exc.__class__.__name__}: {exc}"

    def summary(self) -> str:
        """E.g. `governance_ledgerhead` 2.7 sessions waiting on average (of 60 samples)."""
        if self.error:
            return f"not sampled ({self.error})"
        if not self.waits:
            return f"none in {self.samples} samples"
        parts = [f"`{table}` {n / self.samples:.1f}" for table, n in self.waits.most_common()]
        return f"{', '.join(parts)} (mean sessions waiting, {self.samples} samples)"


# --- figures and checks ---


def percentile(samples: list[float], pct: int) -> float:
    """Linear-interpolated percentile (as benchmarks/measure.py); NaN without samples."""
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


@dataclass(frozen=True)
class EndpointFigures:
    endpoint: str
    requests: int
    statuses: Counter
    throughput: float
    p50_ms: float
    p95_ms: float
    max_ms: float


def endpoint_figures(samples: list[Sample], wall_seconds: float) -> list[EndpointFigures]:
    """Per endpoint (in the order of Api.EXPECTED), then all requests together."""
    groups: dict[str, list[Sample]] = {name: [] for name in Api.EXPECTED}
    for sample in samples:
        groups[sample.endpoint].append(sample)
    groups["all requests"] = list(samples)
    rows = []
    for name, group in groups.items():
        latencies = [s.seconds * 1000 for s in group]
        rows.append(
            EndpointFigures(
                endpoint=name,
                requests=len(group),
                statuses=Counter(s.status for s in group),
                throughput=len(group) / wall_seconds if wall_seconds else 0.0,
                p50_ms=percentile(latencies, 50),
                p95_ms=percentile(latencies, 95),
                max_ms=max(latencies, default=float("nan")),
            )
        )
    return rows


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def integrity_checks(journal: Journal, facts: dict, ledger: tuple[bool, str]) -> list[Check]:
    """What the clients were told against what the database holds."""
    samples = journal.samples
    server_errors = Counter(s.status for s in samples if s.status >= 500)
    no_answer = sum(s.status == 0 for s in samples)
    unexpected = Counter((s.endpoint, s.status) for s in samples if not s.expected and s.status)
    checks = [
        Check("No 5xx answers", not server_errors, _counts(server_errors) or "none"),
        Check("Every request answered within the timeout", not no_answer, f"{no_answer} without"),
        Check(
            "No unexpected status (e.g. 400, 401, 404, 429)",
            not unexpected,
            ", ".join(f"{e} {s}: {n}" for (e, s), n in unexpected.items()) or "none",
        ),
        Check(
            "Scenario outcomes (201 counts, gate answers)",
            not journal.anomalies,
            f"{len(journal.anomalies)} anomalies" if journal.anomalies else "as expected",
        ),
    ]
    checks += _decision_checks(journal, facts)
    checks += _release_checks(journal, facts)
    checks.append(Check("manage.py verify_ledger", ledger[0], ledger[1]))
    return checks


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} x{count}" for key, count in sorted(counter.items()))


def _decision_checks(journal: Journal, facts: dict) -> list[Check]:
    answered = Counter((r, who) for r, who, status in journal.decisions if status == 201)
    unanswered = {(r, who) for r, who, status in journal.decisions if status == 0}
    stored = Counter((d["release"], d["approver"]) for d in facts["decisions"])
    twice = [key for key, n in answered.items() if n > 1]
    missing = [key for key in answered if stored[key] != 1]
    # A decision whose answer never came may or may not exist; everything else must match.
    extra = [key for key in stored if key not in answered and key not in unanswered]
    stages = facts["stages"]
    miscounted = [s for s in stages if s["approval_count"] != s["distinct_approvers"]]
    over = [s for s in stages if s["approval_count"] > s["required"]]
    return [
        Check(
            "Every decision answered 201 is stored exactly once",
            not missing and not twice,
            f"{sum(answered.values())} answered 201, {len(missing)} not stored once, "
            f"{len(twice)} answered 201 twice",
        ),
        Check(
            "No stored decision that was not answered 201",
            not extra,
            f"{sum(stored.values())} stored, {len(extra)} without a 201"
            + (f" (e.g. {extra[:3]})" if extra else ""),
        ),
        Check(
            "Stage approval counts equal distinct approvers' approvals",
            not miscounted and not over,
            f"{len(stages)} stages, {len(miscounted)} miscounted, {len(over)} over their count",
        ),
    ]


def _release_checks(journal: Journal, facts: dict) -> list[Check]:
    by_key = Counter(r["key"] for r in facts["releases"] if r["key"])
    sent = journal.creations
    duplicated = [key for key in sent if by_key[key] > 1]
    lost = [key for key, answers in sent.items() if any(s in (200, 201) for s, _ in answers)]
    lost = [key for key in lost if by_key[key] != 1]
    retried = sum(len(answers) > 1 for answers in sent.values())
    deployed = Counter(r for r, status in journal.deployments if status == 201)
    stored = {r["id"]: r["deployments"] for r in facts["releases"]}
    wrong = [r for r, n in deployed.items() if stored.get(r) != n]
    return [
        Check(
            "One release per Idempotency-Key",
            not duplicated and not lost,
            f"{len(sent)} keys, {retried} sent more than once; {len(duplicated)} duplicated, "
            f"{len(lost)} missing",
        ),
        Check(
            "Every deployment answered 201 is stored",
            not wrong,
            f"{sum(deployed.values())} reported, {len(wrong)} releases differ",
        ),
    ]


def verify_ledger(env: dict[str, str]) -> tuple[bool, str]:
    """`manage.py verify_ledger` against the load database: (exit status 0, its last words)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "verify_ledger"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    words = " ".join((result.stdout + result.stderr).split())
    return result.returncode == 0, f"exit {result.returncode}: {words[:400]}"


# --- the report ---


@dataclass
class Outcome:
    """Everything the report shows."""

    args: argparse.Namespace
    command: str
    started_at: datetime
    wall_seconds: float
    client_cpu_seconds: float
    machine_busy: float
    figures: list[EndpointFigures]
    checks: list[Check]
    facts: dict
    machine: dict[str, str]
    lock_waits: str
    anomalies: list[str]
    examples: dict[tuple[str, int], list[str]]

    @property
    def decision_p95(self) -> float:
        return next(f.p95_ms for f in self.figures if f.endpoint == "POST decisions")

    @property
    def server_errors(self) -> int:
        totals = next(f for f in self.figures if f.endpoint == "all requests")
        return sum(n for status, n in totals.statuses.items() if status >= 500)

    @property
    def target_met(self) -> bool:
        return not self.server_errors and self.decision_p95 < DECISION_P95_TARGET_MS

    @property
    def passed(self) -> bool:
        return self.target_met and all(check.ok for check in self.checks)


def machine_facts(postgres: str, args: argparse.Namespace) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    pool = (args.workers + args.concurrency + 2) * args.threads
    return {
        "Code": code_version(),
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU model": cpu,
        "Load average before the run (1, 5, 15 min)": load,
        "PostgreSQL": postgres,
        "Python": platform.python_version(),
        "gunicorn": f"{args.workers} workers x {args.threads} threads (gthread), 127.0.0.1",
        "Celery": f"worker with embedded beat, concurrency {args.concurrency}, Redis broker",
        "Database connections": f"pool of at most {args.threads} per process (<= {pool} in all)",
    }


def code_version() -> str:
    """The commit the servers ran, and whether the checkout had uncommitted changes then."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    # Only what the servers run: the load test itself, tests and documents do not count.
    names = (line[3:] for line in changed if line.strip())
    files = sorted(
        name
        for name in names
        if not name.startswith(("tests/", "benchmarks/", "docs/"))
        and name not in ("README.md", "Makefile")
    )
    if not files:
        return f"commit {commit}"
    shown = ", ".join(f"`{name}`" for name in files[:6]) + (", ..." if len(files) > 6 else "")
    return f"commit {commit} with uncommitted changes to {shown}"


def _ms(value: float) -> str:
    return "n/a" if value != value else f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _figure_rows(figures: list[EndpointFigures]) -> list[tuple[str, ...]]:
    rows = []
    for f in figures:
        name = f"**{f.endpoint}**" if f.endpoint == "all requests" else f"`{f.endpoint}`"
        statuses = ", ".join(f"{s or 'none'}: {n}" for s, n in sorted(f.statuses.items()))
        rows.append(
            (
                name,
                f"{f.requests:,}",
                statuses or "-",
                f"{f.throughput:.1f}",
                _ms(f.p50_ms),
                _ms(f.p95_ms),
                _ms(f.max_ms),
            )
        )
    return rows


INTRO = """\
## Load test (`make load`)

Written by `make load` (`benchmarks/load.py`), which replaces only this section; `make bench`
keeps it. The whole system runs on this machine with production settings (`DEBUG=false`,
generated `SECRET_KEY` and ledger key, manifest static files, HTTPS as seen behind a proxy):
gunicorn, PostgreSQL (a fresh database each run), Redis (broker, results, cache) and a Celery
worker with beat. Concurrent clients talk to 127.0.0.1 only, one connection per request. Each
client repeats a pipeline run: `POST /api/v1/releases/` with an `Idempotency-Key` (every fourth
one sent twice at the same moment, every fourth a retry afterwards), the gate, the service
approvers' decisions (two of three needed: two at once; one approver twice at once; all three at
once; one after the other; or a rejection), for tier-1 services the CAB stage (sometimes both
members at once), the gate with the digest, and the deployment. Decisions the service refuses
(already decided, stage closed: 403/409) are expected and counted as such. Afterwards the
database must hold exactly the decisions answered 201, one release per key, and stage counts
equal to the distinct approvers; `manage.py verify_ledger` must pass. Target on 2 cores: zero
5xx, decisions p95 under 500 ms at the default pace, where each client pauses 2 s on average
between steps (a pipeline polling the gate and people deciding, far busier than real pipelines,
which poll every 10 to 60 s); `--think 0` sends back to back and measures saturation instead,
where latency is the queue in front of two busy cores. Lock waits are sampled from
`pg_stat_activity` once a second: sessions waiting on `governance_ledgerhead` are writes queuing
for the ledger's head row, which a write transaction holds from its ledger writes (its last
statements) until it commits."""


def load_section(outcome: Outcome) -> str:
    """The Markdown of the load section, markers included."""
    args, facts = outcome.args, outcome.facts
    statuses = Counter(r["status"] for r in facts["releases"])
    verdict = "**PASS**" if outcome.passed else "**FAIL**"
    target = "met" if outcome.target_met else "**not met**"
    config = [
        ("Clients", str(args.clients)),
        (
            "Duration",
            f"{args.duration:g} s asked; the last pipeline runs ended after "
            f"{outcome.wall_seconds:.1f} s",
        ),
        ("Think time", f"{args.think:g} s mean between a client's steps (0: back to back)"),
        ("Ramp-up", f"clients start spread over {ramp_up(args):g} s"),
        ("Per-request timeout", f"{args.timeout:g} s"),
        (
            "Load generator",
            f"one process, a thread per client, on the same cores: "
            f"{outcome.client_cpu_seconds:.1f} CPU s "
            f"({outcome.client_cpu_seconds / outcome.wall_seconds:.0%} of one core)",
        ),
        ("Machine CPU busy during the load (all processes)", f"{outcome.machine_busy:.0%}"),
        *outcome.machine.items(),
    ]
    lines = [
        BEGIN,
        INTRO,
        "",
        f"### Results ({outcome.started_at:%Y-%m-%d %H:%M} UTC): {verdict}",
        "",
        f"Command: `{outcome.command}`. Releases requested: {len(facts['releases']):,} "
        f"({_counts(statuses)}); decisions stored: {len(facts['decisions']):,}; ledger "
        f"entries: {facts['ledger_entries']:,}.",
        "",
        *_table(
            ("Endpoint", "Requests", "Statuses", "req/s", "p50", "p95", "max"),
            _figure_rows(outcome.figures),
        ),
        "",
        f"Target: zero 5xx and `POST decisions` p95 < {DECISION_P95_TARGET_MS:.0f} ms: {target} "
        f"(p95 {_ms(outcome.decision_p95)}, {outcome.server_errors} answers 5xx).",
        "",
        f"Lock waits during the load: {outcome.lock_waits}.",
        "",
        "### Integrity checks",
        "",
        *_table(
            ("Check", "Result", "Detail"),
            [(c.name, "pass" if c.ok else "**FAIL**", c.detail) for c in outcome.checks],
        ),
        "",
        *_problems(outcome),
        "### Configuration and machine",
        "",
        *_table(("", ""), config),
        END,
    ]
    return "\n".join(lines)


def _problems(outcome: Outcome) -> list[str]:
    """The first anomalies and unexpected answers, as a list under the checks (none: nothing)."""
    items = [f"- {anomaly[:300]}" for anomaly in outcome.anomalies[:5]]
    for (endpoint, status), bodies in list(outcome.examples.items())[:5]:
        text = " ".join(bodies[0].split())[:300]
        items.append(f"- `{endpoint}` answered {status or 'nothing'}: `{text}`")
    return ["First problems seen:", "", *items, ""] if items else []


def console(outcome: Outcome, journal: Journal) -> str:
    """The figures and checks as plain text for the terminal."""
    header = ("endpoint", "requests", "statuses", "req/s", "p50", "p95", "max")
    rows = [tuple(cell.strip("*`") for cell in row) for row in _figure_rows(outcome.figures)]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(0, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines += [f"[{'pass' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in outcome.checks]
    lines += [f"  anomaly: {a}" for a in journal.anomalies[:10]]
    for (endpoint, status), bodies in journal.examples.items():
        lines += [f"  {endpoint} -> {status or 'no answer'}: {body}" for body in bodies[:2]]
    lines.append(
        f"Target (zero 5xx, decisions p95 < {DECISION_P95_TARGET_MS:.0f} ms): "
        f"{'met' if outcome.target_met else 'NOT MET'} (p95 {_ms(outcome.decision_p95)})"
    )
    lines.append(f"Lock waits: {outcome.lock_waits}")
    lines.append(f"Machine CPU busy during the load: {outcome.machine_busy:.0%}")
    lines.append("PASS" if outcome.passed else "FAIL")
    return "\n".join(lines)


def write_report(path: Path, section: str) -> None:
    document = path.read_text() if path.exists() else "# Benchmarks\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_load_section(document, section))


# --- the run ---


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the servers are stopped either way."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = " ".join(["python -m benchmarks.load", *argv])
    database_url = loopback_url("LOAD_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = loopback_url("LOAD_REDIS_URL", DEFAULT_REDIS_URL)
    var_dir = Path(tempfile.mkdtemp(prefix="signoff-load-"))
    port = free_port()
    env = server_environment(args, var_dir, port, database_url, redis_url)
    journal = Journal()
    started_at = datetime.now(UTC)
    with interruptible():
        machine = machine_facts(recreate_database(database_url), args)
        flush_redis(redis_url)
        log(f"database and Redis ready; var dir {var_dir}; migrating and collecting static")
        run_python(env, "manage.py", "migrate", "--no-input", "-v", "0")
        run_python(env, "manage.py", "load_default_policy")
        run_python(env, "manage.py", "collectstatic", "--no-input", "-v", "0")
        org = seed_org(env)
        log(f"seeded {len(org.services)} services; starting gunicorn and Celery on port {port}")
        servers: list[Server] = []
        try:
            with running_servers(args, env, var_dir, port) as servers:
                log(f"{args.clients} clients for {args.duration:g} s")
                with LockSampler(database_url) as locks:
                    wall, client_cpu = run_clients(args, org, port, journal)
                log(f"load done in {wall:.1f} s; stopping the servers")
        except KeyboardInterrupt:
            log(f"interrupted: servers stopped; no report written; logs in {var_dir}")
            return 130
        log("checking the database and the ledger")
        facts = load_seed(env, "facts")
        ledger = verify_ledger(env)
    outcome = Outcome(
        args=args,
        command=command,
        started_at=started_at,
        wall_seconds=wall,
        client_cpu_seconds=client_cpu,
        machine_busy=journal.machine_busy,
        figures=endpoint_figures(journal.samples, wall),
        checks=integrity_checks(journal, facts, ledger),
        facts=facts,
        machine=machine,
        lock_waits=locks.summary(),
        anomalies=journal.anomalies,
        examples=journal.examples,
    )
    print(console(outcome, journal), flush=True)
    if not args.no_output:
        write_report(args.output, load_section(outcome))
        log(f"wrote the load section of {args.output}")
    if outcome.passed:
        shutil.rmtree(var_dir, ignore_errors=True)
        return 0
    for server in servers:
        print(f"--- last lines of {server.log} ---\n{server.tail()}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""`make load`: a bounded load test of the whole running system, on this machine only.

python -m benchmarks.load [--clients 50] [--duration 60] [--output docs/benchmarks.md]
                          [--web-replicas 1] [--worker-replicas 1]

Prepares its own PostgreSQL database (dropped and recreated each run) and Redis database
(flushed), starts the processes compose.yaml runs, with production settings: web replicas
(gunicorn, each on its own loopback port), Celery workers and exactly one beat. Then N concurrent
clients run for a bounded time, their requests sent to the web replicas in turn: a pipeline
requests a release (with Idempotency-Key retries), polls the gate, approvers decide (with
deliberate concurrent duplicates), the pipeline reports the deployment. The workers then get a
bounded time to deliver the notifications, and every process is stopped, whatever happens.
Afterwards it checks against the database that every decision was recorded exactly once, every
notification was sent and the ledger verifies, prints PASS or FAIL (exit status 1 on FAIL) and
writes the figures to the load section of docs/benchmarks.md. With more than one web or worker
replica, one web + one worker runs first, and the section shows both side by side.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.load_clients import (
    Api,
    Journal,
    LoadService,
    LockSampler,
    Org,
    Person,
    Sample,
    ramp_up,
    run_clients,
)
from benchmarks.load_processes import (
    CpuMeter,
    Layout,
    Replicas,
    Server,
    read_layout,
    running_servers,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/signoff_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
HOST = "127.0.0.1"  # as load_clients and load_processes: the load test stays on loopback
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BEGIN = "<!-- load:begin -->"
END = "<!-- load:end -->"
DECISION_P95_TARGET_MS = 500.0
# After the clients stop, the workers get this long to deliver the last notifications: beat's
# delivery sweep runs every minute, so one lost kick is still delivered within it.
DRAIN_TIMEOUT = 75.0

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
    parser.add_argument(
        "--web-replicas",
        type=int,
        default=1,
        help="web replicas, each a gunicorn on its own port (1; more: the 1 + 1 run comes first)",
    )
    parser.add_argument("--worker-replicas", type=int, default=1, help="Celery workers (1)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per replica (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (4)")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="processes per Celery worker (2)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print only, write no report")
    args = parser.parse_args(argv)
    sizes = (args.clients, args.iterations, args.workers, args.threads, args.concurrency)
    if min(*sizes, args.web_replicas, args.worker_replicas) < 1:
        parser.error(
            "--clients, --iterations, --*-replicas, --workers, --threads, --concurrency >= 1"
        )
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


def recreate_database(url: str, marker: str = "load") -> str:
    """Drop and create the load database, so every run starts from the same empty state."""
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    # A guard against a mistyped database URL: this drops the database without asking.
    if marker not in name:
        raise SystemExit(f"the database URL must name a database containing {marker!r}: {name!r}")
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


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on loopback now (all held open together while chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def server_environment(
    var_dir: Path, port: int, database_url: str, redis_url: str, pool_size: int
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
        # INFO, as in compose: the worker's "ready." and beat's start are INFO lines.
        "LOG_LEVEL": "INFO",
        # One pooled connection per gunicorn thread is all a worker can use at once; it keeps
        # (workers + worker processes + beat + parent) x pool size well under max_connections.
        "DATABASE_POOL_MAX_SIZE": str(pool_size),
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
    lags = facts["notification_lags"]
    unsent = sum(lag is None for lag in lags)
    checks.append(
        Check(
            "Every notification queued was sent (outbox drained)",
            not unsent,
            f"{len(lags):,} queued, {unsent} not sent",
        )
    )
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
    """Everything the report shows about one configuration's run."""

    replicas: Replicas
    started_at: datetime
    wall_seconds: float
    client_cpu_seconds: float
    machine_busy: float
    load_average: str
    figures: list[EndpointFigures]
    checks: list[Check]
    facts: dict
    lock_waits: str
    cpu: dict[str, float]  # server CPU seconds during the load and the drain, by process kind
    drain_seconds: float
    anomalies: list[str]
    examples: dict[tuple[str, int], list[str]]

    @property
    def label(self) -> str:
        return self.replicas.label

    def endpoint(self, name: str) -> EndpointFigures:
        return next(f for f in self.figures if f.endpoint == name)

    @property
    def decision_p95(self) -> float:
        return self.endpoint("POST decisions").p95_ms

    @property
    def server_errors(self) -> int:
        statuses = self.endpoint("all requests").statuses
        return sum(n for status, n in statuses.items() if status >= 500)

    @property
    def target_met(self) -> bool:
        return not self.server_errors and self.decision_p95 < DECISION_P95_TARGET_MS

    @property
    def passed(self) -> bool:
        return self.target_met and all(check.ok for check in self.checks)


def machine_facts(postgres: str, args: argparse.Namespace, layout: Layout) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    # Every process with a pool: gunicorn workers and masters, Celery pool processes and
    # parents, beat; each pool holds at most `threads` connections.
    processes = args.web_replicas * (args.workers + 1) + args.worker_replicas * (
        args.concurrency + 1
    )
    return {
        "Code": code_version(),
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU model": cpu,
        "PostgreSQL": postgres,
        "Python": platform.python_version(),
        "Commands (from " + layout.source + ")": "; ".join(
            f"{kind} `{' '.join(command)}`"
            for kind, command in (
                ("web", layout.web),
                ("worker", layout.worker),
                ("beat", layout.beat),
            )
        ),
        "Web replica": f"gunicorn, {args.workers} workers x {args.threads} threads, own port on "
        "127.0.0.1; requests sent to each replica in turn",
        "Worker replica": f"Celery, concurrency {args.concurrency}, every queue; one beat in all",
        "Database connections": f"pool of at most {args.threads} per process "
        f"(<= {(processes + 1) * args.threads} in all with the most replicas)",
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


def _seconds(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f} s" if value < 10 else f"{value:.0f} s"


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


def notification_figures(lags: list[float | None]) -> str:
    """Delivery lag of the notifications the run queued, e.g. `p50 0.31 s, p95 1.2 s, ...`."""
    sent = [lag for lag in lags if lag is not None]
    if not lags:
        return "none queued"
    return (
        f"p50 {_seconds(percentile(sent, 50))}, p95 {_seconds(percentile(sent, 95))}, "
        f"max {_seconds(max(sent, default=float('nan')))}; "
        f"{len(sent):,} sent, {len(lags) - len(sent)} never"
    )


def comparison_rows(outcomes: list[Outcome]) -> list[tuple[str, ...]]:
    """One row per figure, one column per configuration."""

    def row(name: str, cell: Callable[[Outcome], str]) -> tuple[str, ...]:
        return (name, *(cell(outcome) for outcome in outcomes))

    def cpu(outcome: Outcome) -> str:
        kinds = ("web", "worker", "beat", "postgres")
        return ", ".join(f"{kind} {outcome.cpu.get(kind, 0.0):.1f}" for kind in kinds)

    def cpu_per_request(outcome: Outcome) -> str:
        requests = outcome.endpoint("all requests").requests
        return f"{1000 * sum(outcome.cpu.values()) / requests:.0f} ms" if requests else "n/a"

    def errors(outcome: Outcome) -> str:
        statuses = outcome.endpoint("all requests").statuses
        failed = sum(not check.ok for check in outcome.checks)
        return (
            f"{outcome.server_errors} x 5xx, {statuses.get(0, 0)} unanswered; "
            f"checks failed: {failed}"
        )

    def verdict(outcome: Outcome) -> str:
        return "**PASS**" if outcome.passed else "**FAIL**"

    return [
        row("Verdict", verdict),
        row("Releases requested", lambda o: f"{len(o.facts['releases']):,}"),
        row("Requests (req/s)", lambda o: _requests(o.endpoint("all requests"))),
        row("`POST decisions` p50 / p95", lambda o: _p50_p95(o.endpoint("POST decisions"))),
        row("`GET gate` p50 / p95", lambda o: _p50_p95(o.endpoint("GET gate"))),
        row("`POST releases` p50 / p95", lambda o: _p50_p95(o.endpoint("POST releases"))),
        row("Errors", errors),
        row(
            "Notification delivery lag",
            lambda o: notification_figures(o.facts["notification_lags"]),
        ),
        row("Outbox drained after the load in", lambda o: _seconds(o.drain_seconds)),
        row("Lock waits", lambda o: o.lock_waits),
        row("Server CPU seconds", cpu),
        row("Server CPU per request", cpu_per_request),
        row("Machine CPU busy (all processes)", lambda o: f"{o.machine_busy:.0%}"),
        row("Load average before the run", lambda o: o.load_average),
    ]


def _requests(figures: EndpointFigures) -> str:
    return f"{figures.requests:,} ({figures.throughput:.1f}/s)"


def _p50_p95(figures: EndpointFigures) -> str:
    return f"{_ms(figures.p50_ms)} / {_ms(figures.p95_ms)}"


INTRO = """\
## Load test (`make load`)

Written by `make load` (`benchmarks/load.py`), which replaces only this section; `make bench`
keeps it. The whole system runs on this machine with production settings (`DEBUG=false`,
generated `SECRET_KEY` and ledger key, manifest static files, HTTPS as seen behind a proxy),
started with the commands compose.yaml gives its services: web replicas (`gunicorn -c
config/gunicorn.conf.py config.wsgi`, each on its own port), Celery workers consuming every
queue, exactly one beat, on PostgreSQL (a fresh database each run) and Redis (broker, results,
cache). `--web-replicas N --worker-replicas M` runs one web + one worker first, then N + M, with
the same clients and duration, and reports them side by side. Concurrent clients talk to
127.0.0.1 only, one connection per request, sent to the web replicas in turn as a round-robin
load balancer would. Each client repeats a pipeline run: `POST /api/v1/releases/` with an
`Idempotency-Key` (every fourth one sent twice at the same moment, every fourth a retry
afterwards), the gate, the service approvers' decisions (two of three needed: two at once; one
approver twice at once; all three at once; one after the other; or a rejection), for tier-1
services the CAB stage (sometimes both members at once), the gate with the digest, and the
deployment. Decisions the service refuses (already decided, stage closed: 403/409) are expected
and counted as such. Afterwards the workers get up to 75 s to deliver the last notifications;
then the database must hold exactly the decisions answered 201, one release per key, stage
counts equal to the distinct approvers and every notification sent; `manage.py verify_ledger`
must pass. Target on 2 cores: zero 5xx, decisions p95 under 500 ms at the default pace, where
each client pauses 2 s on average between steps (a pipeline polling the gate and people
deciding, far busier than real pipelines, which poll every 10 to 60 s); `--think 0` sends back
to back and measures saturation instead. Lock waits are sampled from `pg_stat_activity` once a
second: sessions waiting on `governance_ledgerhead` are writes queuing for the ledger's head
row. Server CPU is read from `/proc` for each kind of process (PostgreSQL: the backends of the
load database)."""

CPU_NOTE = """\
Every process of every configuration runs on the same two cores, with the load generator and
whatever else the machine is doing (the load average says how busy it was): two replicas here
share the CPU one replica had, so the second column shows that the system stays correct with
replicas (the same checks pass with requests for one release landing on different web processes
and tasks on different workers) and what the extra processes cost, not how it scales out. On
separate machines, each replica brings its own cores."""


def load_section(
    outcomes: list[Outcome], args: argparse.Namespace, command: str, machine: dict[str, str]
) -> str:
    """The Markdown of the load section, markers included: the configurations side by side,
    then each one's endpoints and checks."""
    passed = all(outcome.passed for outcome in outcomes)
    lines = [
        BEGIN,
        INTRO,
        "",
        f"### Results ({outcomes[0].started_at:%Y-%m-%d %H:%M} UTC): "
        f"{'**PASS**' if passed else '**FAIL**'}",
        "",
        f"Command: `{command}`. Target: zero 5xx and `POST decisions` p95 < "
        f"{DECISION_P95_TARGET_MS:.0f} ms in every configuration.",
        "",
        *_table(("", *(outcome.label for outcome in outcomes)), comparison_rows(outcomes)),
        "",
        CPU_NOTE,
    ]
    for outcome in outcomes:
        lines += _run_details(outcome)
    config = [
        ("Clients", str(args.clients)),
        ("Duration", f"{args.duration:g} s asked, in each configuration"),
        ("Think time", f"{args.think:g} s mean between a client's steps (0: back to back)"),
        ("Ramp-up", f"clients start spread over {ramp_up(args):g} s"),
        ("Per-request timeout", f"{args.timeout:g} s"),
        *machine.items(),
    ]
    lines += ["", "### Configuration and machine", "", *_table(("", ""), config), END]
    return "\n".join(lines)


def _run_details(outcome: Outcome) -> list[str]:
    facts = outcome.facts
    statuses = Counter(r["status"] for r in facts["releases"])
    generator = outcome.client_cpu_seconds
    return [
        "",
        f"### {outcome.label}: {'PASS' if outcome.passed else '**FAIL**'}",
        "",
        f"Releases requested: {len(facts['releases']):,} ({_counts(statuses)}); decisions "
        f"stored: {len(facts['decisions']):,}; ledger entries: {facts['ledger_entries']:,}. "
        f"The last pipeline runs ended after {outcome.wall_seconds:.1f} s; the load generator "
        f"used {generator:.1f} CPU s ({generator / outcome.wall_seconds:.0%} of one core).",
        "",
        *_table(
            ("Endpoint", "Requests", "Statuses", "req/s", "p50", "p95", "max"),
            _figure_rows(outcome.figures),
        ),
        "",
        *_table(
            ("Check", "Result", "Detail"),
            [(c.name, "pass" if c.ok else "**FAIL**", c.detail) for c in outcome.checks],
        ),
        *_problems(outcome),
    ]


def _problems(outcome: Outcome) -> list[str]:
    """The first anomalies and unexpected answers, as a list under the checks (none: nothing)."""
    items = [f"- {anomaly[:300]}" for anomaly in outcome.anomalies[:5]]
    for (endpoint, status), bodies in list(outcome.examples.items())[:5]:
        text = " ".join(bodies[0].split())[:300]
        items.append(f"- `{endpoint}` answered {status or 'nothing'}: `{text}`")
    return ["", "First problems seen:", "", *items] if items else []


def console(outcome: Outcome) -> str:
    """One configuration's figures and checks as plain text for the terminal."""
    header = ("endpoint", "requests", "statuses", "req/s", "p50", "p95", "max")
    rows = [tuple(cell.strip("*`") for cell in row) for row in _figure_rows(outcome.figures)]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"== {outcome.label} =="]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += [f"[{'pass' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in outcome.checks]
    lines += [f"  anomaly: {a}" for a in outcome.anomalies[:10]]
    for (endpoint, status), bodies in outcome.examples.items():
        lines += [f"  {endpoint} -> {status or 'no answer'}: {body}" for body in bodies[:2]]
    lines += [f"{name}: {' | '.join(cells)}" for name, *cells in comparison_rows([outcome])]
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


def wait_for_outbox(database_url: str) -> float:
    """Seconds until every notification queued during the load was sent (at most
    DRAIN_TIMEOUT; whatever is left is reported by the checks)."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        while time.monotonic() - started < DRAIN_TIMEOUT:
            left = conn.execute(
                "SELECT count(*) FROM governance_notification WHERE delivered_at IS NULL"
            ).fetchone()[0]
            if not left:
                break
            time.sleep(0.2)
    return time.monotonic() - started


@dataclass(frozen=True)
class Setting:
    """What every configuration's run shares: URLs, the commands, the organisation's seed."""

    args: argparse.Namespace
    layout: Layout
    database_url: str
    redis_url: str


def run_configuration(setting: Setting, replicas: Replicas) -> tuple[Outcome, list[Server], Path]:
    """One configuration from an empty database to its checked outcome (servers stopped)."""
    args, database_url = setting.args, setting.database_url
    var_dir = Path(tempfile.mkdtemp(prefix="signoff-load-"))
    ports = free_ports(replicas.web)
    env = server_environment(var_dir, ports[0], database_url, setting.redis_url, args.threads)
    journal = Journal()
    started_at = datetime.now(UTC)
    recreate_database(database_url)
    flush_redis(setting.redis_url)
    log(
        f"{replicas.label}: database and Redis ready; var dir {var_dir}; "
        "migrating, collecting static"
    )
    run_python(env, "manage.py", "migrate", "--no-input", "-v", "0")
    run_python(env, "manage.py", "load_default_policy")
    run_python(env, "manage.py", "collectstatic", "--no-input", "-v", "0")
    org = seed_org(env)
    load_average = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    log(f"seeded {len(org.services)} services; starting the servers on ports {ports}")
    with running_servers(setting.layout, replicas, env, var_dir, ports, log) as servers:
        meter = CpuMeter(servers, urlsplit(database_url).path.lstrip("/"))
        meter.start()
        log(f"{args.clients} clients for {args.duration:g} s")
        with LockSampler(database_url) as locks:
            wall, client_cpu = run_clients(args, org, ports, journal)
        log(f"load done in {wall:.1f} s; waiting for the outbox")
        drain = wait_for_outbox(database_url)
        meter.stop()
        log(f"outbox drained in {drain:.1f} s; stopping the servers")
    log("checking the database and the ledger")
    facts = load_seed(env, "facts")
    outcome = Outcome(
        replicas=replicas,
        started_at=started_at,
        wall_seconds=wall,
        client_cpu_seconds=client_cpu,
        machine_busy=journal.machine_busy,
        load_average=load_average,
        figures=endpoint_figures(journal.samples, wall),
        checks=integrity_checks(journal, facts, verify_ledger(env)),
        facts=facts,
        lock_waits=locks.summary(),
        cpu=meter.used,
        drain_seconds=drain,
        anomalies=journal.anomalies,
        examples=journal.examples,
    )
    return outcome, servers, var_dir


def configurations(args: argparse.Namespace) -> list[Replicas]:
    """One web + one worker, then the replicas asked for (when that is more)."""
    sizes = dict(gunicorn_workers=args.workers, threads=args.threads, concurrency=args.concurrency)
    single = Replicas(web=1, workers=1, **sizes)
    asked = Replicas(web=args.web_replicas, workers=args.worker_replicas, **sizes)
    return [single] if asked == single else [single, asked]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = " ".join(["python -m benchmarks.load", *argv])
    setting = Setting(
        args=args,
        layout=read_layout(),
        database_url=loopback_url("LOAD_DATABASE_URL", DEFAULT_DATABASE_URL),
        redis_url=loopback_url("LOAD_REDIS_URL", DEFAULT_REDIS_URL),
    )
    log(f"commands from {setting.layout.source}")
    outcomes = []
    with interruptible():
        machine = machine_facts(recreate_database(setting.database_url), args, setting.layout)
        for replicas in configurations(args):
            try:
                outcome, servers, var_dir = run_configuration(setting, replicas)
            except KeyboardInterrupt:
                log("interrupted: servers stopped; no report written")
                return 130
            print(console(outcome), flush=True)
            if outcome.passed:
                shutil.rmtree(var_dir, ignore_errors=True)
            else:
                for server in servers:
                    print(f"--- last lines of {server.log} ---\n{server.tail()}", flush=True)
            outcomes.append(outcome)
    if not args.no_output:
        write_report(args.output, load_section(outcomes, args, command, machine))
        log(f"wrote the load section of {args.output}")
    passed = all(outcome.passed for outcome in outcomes)
    print("PASS" if passed else "FAIL", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

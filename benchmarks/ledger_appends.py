"""The ledger's append ceiling: appends per second through `governance.ledger.services` with N
concurrent writers on PostgreSQL, each a process with its own connection, one append per
transaction.

python -m benchmarks.ledger_appends [--writers 1,2,4,8] [--seconds 5] [--work-ms 5]

Every append locks the ledger's single head row until its transaction commits, so appends
serialise: the ceiling is one over the time that lock is held. Three kinds of transaction:

- `append only`: the transaction is the append (the lock is held for the chain, sign, insert,
  head update and commit);
- `append, then work`: the append first, then `--work-ms` of other statements before the commit
  (the lock is held for the work too: what `deferred()` avoids);
- `work, then append (deferred)`: the same transaction inside `ledger.deferred()`, as the
  services write it: the entry is written last, so the lock is held for the write and commit.

The lock wait per append comes from sampling pg_stat_activity every few milliseconds: by
Little's law, the mean number of sessions waiting for a lock divided by the appends per second
is the mean time an append waited. Runs against its own database (CAPACITY_DATABASE_URL,
default signoff_capacity, dropped and recreated) with production settings.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from benchmarks.load import (
    loopback_url,
    percentile,
    recreate_database,
    run_python,
    server_environment,
)
from benchmarks.sampling import ActivitySampler

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/signoff_capacity"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
MODES = ("append only", "append, then work", "work, then append (deferred)")
SAMPLE_EVERY = 0.005  # seconds between pg_stat_activity samples
WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class AppendFigures:
    """One measurement: `writers` processes appending in `mode` for `seconds`."""

    mode: str
    writers: int
    appends: int
    seconds: float
    p50_ms: float
    p95_ms: float
    mean_waiting: float  # sessions waiting for a lock, on average

    @property
    def per_second(self) -> float:
        return self.appends / self.seconds if self.seconds else 0.0

    @property
    def wait_ms(self) -> float:
        """Mean lock wait per append (Little's law: waiting sessions / arrival rate)."""
        return 1000 * self.mean_waiting / self.per_second if self.appends else float("nan")


def one_transaction(mode: str, work_ms: float, number: int) -> None:
    """One transaction of `mode` through the real ledger service."""
    from django.db import connection, transaction

    from governance.ledger import services as ledger

    def work() -> None:
        # Stands in for the transaction's other statements (a decision's locks and inserts).
        if work_ms:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(%s)", [work_ms / 1000])

    def append() -> None:
        ledger.append(
            kind="benchmark.append",
            subject=f"release:{number}",
            actor="ledger-benchmark",
            payload={"stage": "service", "verdict": "approve", "rationale": "Reviewed the diff"},
        )

    if mode == "append only":
        with transaction.atomic():
            append()
    elif mode == "append, then work":
        with transaction.atomic():
            append()
            work()
    else:
        # As the services do: appended early in the code, written when the block ends.
        with transaction.atomic(), ledger.deferred():
            append()
            work()


def writer(
    mode: str, work_ms: float, flush: bool, start_at: float, stop_at: float, out: Connection
) -> None:
    """A child process: transactions back to back between `start_at` and `stop_at` (monotonic
    clock, shared by every process); sends back the latency of each in seconds, or the error."""
    from django.db import connection, connections

    forget_inherited_connections()
    try:
        if not flush:
            # Diagnostic only: a commit no longer waits for its WAL flush, which shows how much
            # of the lock hold is the disk. Never for real ledger writes (a crash loses entries).
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
        latencies = []
        time.sleep(max(0.0, start_at - time.monotonic()))
        number = os.getpid() * 1_000_000
        while time.monotonic() < stop_at:
            started = time.monotonic()
            one_transaction(mode, work_ms, number)
            latencies.append(time.monotonic() - started)
            number += 1
        out.send(latencies)
    except Exception as exc:
        out.send(f"{exc.__class__.__name__}: {exc}")
    finally:
        connections.close_all()
        out.close()


def forget_inherited_connections() -> None:
    """In a forked writer: drop every connection and pool object copied from the parent (their
    sockets are the parent's, and a pool's threads did not survive the fork), unclosed, so that
    the first query opens the writer's own connection."""
    from asgiref.local import Local
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    DatabaseWrapper._connection_pools = {}
    connections._connections = Local(connections.thread_critical)


def drop_connections() -> None:
    """Close this process's connections and pools: a forked writer must open its own, never
    share a socket (or a pool of them) with its parent."""
    from django.db import connections

    for connection in connections.all():
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()


class WaitSampler(ActivitySampler):
    """Mean number of sessions waiting for a lock, sampled from pg_stat_activity."""

    every = SAMPLE_EVERY
    name = "wait-sampler"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.total = 0

    def sample(self, connection) -> None:
        self.total += connection.execute(WAITING).fetchone()[0]

    @property
    def mean(self) -> float:
        return self.total / self.samples if self.samples else 0.0


def measure(
    *, mode: str, writers: int, seconds: float, work_ms: float, url: str, flush: bool = True
) -> AppendFigures:
    """`writers` processes appending for `seconds`; Django must be set up (fork start method:
    the children inherit the configured settings)."""
    drop_connections()
    context = multiprocessing.get_context("fork")
    start_at = time.monotonic() + 0.5  # every child started and connected by then
    stop_at = start_at + seconds
    pipes, processes = [], []
    for _ in range(writers):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=writer, args=(mode, work_ms, flush, start_at, stop_at, send), daemon=True
        )
        process.start()
        send.close()
        pipes.append(receive)
        processes.append(process)
    time.sleep(max(0.0, start_at - time.monotonic()))
    try:
        with WaitSampler(url) as waits:
            answers = [pipe.recv() if pipe.poll(seconds + 60) else "no answer" for pipe in pipes]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    errors = [answer for answer in answers if isinstance(answer, str)]
    if errors:
        raise RuntimeError(f"{len(errors)} writer(s) failed: {errors[0]}")
    latencies = [seconds for answer in answers for seconds in answer]
    milliseconds = [1000 * value for value in latencies]
    return AppendFigures(
        mode=mode,
        writers=writers,
        appends=len(latencies),
        seconds=seconds,
        p50_ms=percentile(milliseconds, 50),
        p95_ms=percentile(milliseconds, 95),
        mean_waiting=waits.mean,
    )


def markdown(rows: list[AppendFigures], work_ms: float) -> str:
    """The figures as a Markdown table."""
    lines = [
        f"| Transaction (other work: {work_ms:g} ms) | Writers | Appends/s | "
        "p50 | p95 | Sessions waiting | Lock wait per append |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.mode} | {row.writers} | {row.per_second:,.0f} | {row.p50_ms:.1f} ms | "
            f"{row.p95_ms:.1f} ms | {row.mean_waiting:.2f} | {row.wait_ms:.1f} ms |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ledger_appends",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--writers", default="1,2,4,8", help="writer counts (1,2,4,8)")
    parser.add_argument("--seconds", type=float, default=5, help="seconds per measurement (5)")
    parser.add_argument("--work-ms", type=float, default=5, help="other work per transaction (5)")
    parser.add_argument(
        "--no-flush-wait",
        action="store_true",
        help="commits do not wait for the WAL flush (diagnostic: how much of the hold is disk)",
    )
    args = parser.parse_args(argv)
    try:
        args.writers = [int(n) for n in args.writers.split(",")]
    except ValueError:
        parser.error("--writers: comma-separated whole numbers, e.g. 1,2,4,8")
    if min(args.writers) < 1 or not 0.5 <= args.seconds <= 600 or args.work_ms < 0:
        parser.error("--writers >= 1, --seconds 0.5..600, --work-ms >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    url = loopback_url("CAPACITY_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = loopback_url("CAPACITY_REDIS_URL", DEFAULT_REDIS_URL)
    postgres = recreate_database(url, marker="capacity")
    var_dir = Path(tempfile.mkdtemp(prefix="signoff-ledger-appends-"))
    env = server_environment(var_dir, 8000, url, redis_url, pool_size=1)
    # A plain connection per writer process: nothing pooled is ever shared across fork.
    env["DATABASE_POOL"] = "false"
    try:
        return measure_all(args, env, url, postgres)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def measure_all(args: argparse.Namespace, env: dict[str, str], url: str, postgres: str) -> int:
    """Migrate the capacity database, measure every mode and writer count, print the table."""
    run_python(env, "manage.py", "migrate", "--no-input", "-v", "0")
    os.environ.update(env)
    import django

    django.setup()
    flush = "off (diagnostic)" if args.no_flush_wait else "on"
    print(f"PostgreSQL {postgres}; synchronous_commit {flush}; {os.cpu_count()} CPUs", flush=True)
    rows = []
    for mode in MODES:
        for writers in args.writers:
            row = measure(
                mode=mode,
                writers=writers,
                seconds=args.seconds,
                work_ms=args.work_ms,
                url=url,
                flush=not args.no_flush_wait,
            )
            print(f"{mode}, {writers} writers: {row.per_second:,.0f} appends/s", flush=True)
            rows.append(row)
    print(markdown(rows, args.work_ms))
    from governance.ledger.services import verify

    verified, problem = verify()
    print(f"Ledger: {verified:,} entries verified; {problem or 'no problem found'}")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())

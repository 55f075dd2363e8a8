"""`make bench`: seed PostgreSQL to size (once), measure the budgets, write docs/benchmarks.md.

python -m benchmarks.run [--quick] [--releases N] [--ledger N] [--requests N] [--output PATH]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from benchmarks import database

if TYPE_CHECKING:
    from benchmarks.seed_org import Org

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
FULL = {"releases": 100_000, "ledger": 1_000_000}
QUICK = {"releases": 2_000, "ledger": 20_000}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2,000 releases, 20,000 ledger entries, own database",
    )
    parser.add_argument("--releases", type=int, help="releases to seed (default 100,000)")
    parser.add_argument("--ledger", type=int, help="ledger entries to seed (default 1,000,000)")
    parser.add_argument(
        "--requests", type=int, default=400, help="timed requests per endpoint (default 400)"
    )
    parser.add_argument(
        "--output", type=Path, help="report path (default docs/benchmarks.md; none with --quick)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    args.releases = args.releases if args.releases is not None else sizes["releases"]
    args.ledger = args.ledger if args.ledger is not None else sizes["ledger"]
    if args.output is None and not args.quick:
        args.output = DEFAULT_OUTPUT
    if min(args.releases, args.ledger, args.requests) < 1:
        parser.error("--releases, --ledger and --requests must be positive")
    return args


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_django(db: database.BenchDatabase) -> None:
    """django.setup() with the benchmark URLconf and plain static storage, then migrate."""
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    django.setup()
    # WhiteNoise warns that STATIC_ROOT is missing; static files are not what is measured.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Manifest storage would need collectstatic; static URLs are not what is measured.
    override_settings(ROOT_URLCONF="benchmarks.urls", STORAGES=storages).enable()
    log(f"database {db.name} ({'created' if db.created else 'exists'}); migrating")
    call_command("migrate", verbosity=0, interactive=False)


def seed_snapshots() -> int:
    """Gate snapshots for requests COPYed in without one (the services build them normally)."""
    from approvals.gate import rebuild_snapshots
    from approvals.models import ApprovalRequest

    missing = ApprovalRequest.objects.filter(gate_snapshot={})
    if missing.exists():
        log("building gate snapshots of seeded requests")
    return rebuild_snapshots(missing)


class Phases(dict):
    """Wall-clock seconds of each phase of the run, in order."""

    def run(self, name: str, action: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return action()
        finally:
            self[name] = time.perf_counter() - started


def seed(args: argparse.Namespace, db: database.BenchDatabase, phases: Phases) -> Org:
    """Organisation, releases and ledger to the requested sizes (top-up only)."""
    from benchmarks.seed_ledger import seed_ledger
    from benchmarks.seed_org import seed_org
    from benchmarks.seed_releases import sample_plans, seed_releases

    org = phases.run("seed: organisation", seed_org)
    added = phases.run("seed: releases", lambda: seed_releases(org, args.releases, log))
    phases.run("seed: gate snapshots", seed_snapshots)
    added += phases.run("seed: ledger", lambda: seed_ledger(args.ledger, sample_plans(org), log))
    if added:
        spent = sum(v for k, v in phases.items() if k.startswith("seed"))
        previous = float(database.read_meta(db.url, "seed_seconds") or 0)
        database.write_meta(db.url, "seed_seconds", f"{previous + spent:.1f}")
    return org


def measure_all(args: argparse.Namespace, org: Org, phases: Phases) -> dict:
    """Gate vs. baseline, the queue page, ledger verification, the sweeps, the pages, the
    exports, the policy engine, the admission webhook and the data-lake export, by name."""
    from benchmarks import admission, exports, lake, measure, metrics, policy, prometheus, sweeps
    from governance.identity.tokens import issue_token
    from governance.models import ApiToken

    rng = random.Random(20240601)
    ApiToken.objects.filter(user=org.bot, name="benchmark").delete()  # one token per run, not more
    _, token = issue_token(user=org.bot, name="benchmark")
    log(f"gate vs baseline: {args.requests} timed requests each")
    api = phases.run("gate vs baseline", lambda: measure.measure_api(token, args.requests, rng))
    log("approver queue page")
    queue = phases.run(
        "queue page", lambda: measure.measure_queue(org.queue_user, min(args.requests, 200))
    )
    log("ledger verification (the app's verifier, then plain crypto)")
    ledger = phases.run("ledger verification", measure.measure_ledger)
    log(f"escalation and reminder sweeps on {sweeps.STAGES:,} overdue stages")
    swept = phases.run("sweeps", sweeps.measure_sweeps)
    log("auditors' pages (reports home, ledger page, audit trail)")
    pages = phases.run(
        "auditor pages", lambda: measure.measure_auditor_pages(min(args.requests, 200))
    )
    log("metrics pages: the rollups' refresh, then each audience's page")
    pages += phases.run(
        "metrics pages", lambda: metrics.measure_metrics_pages(org, min(args.requests, 200))
    )
    log("Prometheus scrape /metrics")
    pages += phases.run(
        "metrics endpoint", lambda: prometheus.measure_metrics_endpoint(min(args.requests, 200))
    )
    log("streamed exports (compliance CSV, ledger) against COPY, each in a fresh process")
    streamed = phases.run("exports", exports.measure_exports)
    log("policy engine: parse, evaluation, one simulated release")
    policy_timings = phases.run("policy engine", policy.measure_policy)
    log("Kubernetes admission webhook: an admitted pod, a denied dry run")
    admission_timings = phases.run(
        "admission webhook", lambda: admission.measure_admission(args.requests)
    )
    log("data-lake export of the whole ledger (CloudEvents + Parquet), in a fresh process")
    lake_export = phases.run("lake export", lake.measure_lake_export)
    return {
        "api": api,
        "queue": queue,
        "ledger": ledger,
        "sweeps": swept,
        "exports": streamed,
        "pages": pages,
        "policy": policy_timings,
        "admission": admission_timings,
        "lake": lake_export,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.perf_counter()
    phases = Phases()
    db = database.prepare(args.quick)
    phases.run("start and migrate", lambda: start_django(db))
    org = seed(args, db, phases)
    measured = measure_all(args, org, phases)

    from benchmarks import report

    results = report.Results(
        **measured,
        phases=dict(phases),
        seed_total_seconds=float(database.read_meta(db.url, "seed_seconds") or 0),
        total_seconds=time.perf_counter() - started,
        requests=args.requests,
        command=" ".join(["python -m benchmarks.run", *argv]),
    )
    print(report.console(results), flush=True)
    if args.output:
        text = report.markdown(results, report.machine(), report.data_sizes())
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the policy engine costs: parsing and evaluating the built-in policy, and one release of
the policy editor's simulation (its context built, then planned with two documents).

Timings are in milliseconds per operation, each operation timed on its own (perf_counter) after
a warm-up, reported as median and p95 like the pages. The release contexts come from the
benchmark database's newest releases, loaded as the simulation loads them; queries per simulated
release are counted in a separate pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.context import policy_context
from approvals.policy_editor import simulation
from benchmarks.measure import Timing
from governance.policy import engine

BUILT_IN = Path(engine.__file__).resolve().parent / "default.yaml"
RUNS = 2_000
WARMUP = 50
QUERY_SAMPLES = 20


def measure_policy(runs: int = RUNS) -> list[Timing]:
    """Parse (uncached) and evaluation of the built-in policy, and one simulated release."""
    source = BUILT_IN.read_text()
    # A draft that changes production: the comparison has differences to find, as it would.
    draft = source.replace("count: 2", "count: 3", 1)
    rules = len(engine.parse(source))
    releases = simulation.recent_releases(simulation.MAX_DAYS)
    parse = _timing(
        f"Policy parse, built-in policy ({rules} rules, uncached)", runs, _parse(source)
    )
    if not releases:
        missing = "no release in the database to build a context from"
        return [parse, _failed("Policy evaluation", missing), _failed("Simulated release", missing)]
    context = policy_context(releases[0], list(releases[0].evidence.all()))
    evaluation = _timing(
        f"Policy evaluation, built-in policy ({rules} rules)",
        runs,
        lambda: engine.evaluate(source, context),
    )
    simulated = _timing(
        "Simulated release (context, two plans, comparison)",
        min(runs, len(releases)),
        _simulate(releases, source, draft),
    )
    simulated.queries = _queries_per_release(releases[:QUERY_SAMPLES])
    return [parse, evaluation, simulated]


def _parse(source: str) -> Callable[[], object]:
    # `parse` is cached by source; its undecorated function is what an edited draft costs.
    uncached = engine.parse.__wrapped__
    return lambda: uncached(source)


def _simulate(releases: list, published: str, draft: str) -> Callable[[], object]:
    """One release per call, round robin, as `simulation.simulate` handles each."""
    position = iter(range(10**9))

    def one() -> object:
        release = releases[next(position) % len(releases)]
        context = policy_context(release, list(release.evidence.all()))
        return simulation.compare(
            engine.evaluate(published, context), engine.evaluate(draft, context)
        )

    return one


def _timing(name: str, runs: int, operation: Callable[[], object]) -> Timing:
    timing = Timing(name)
    try:
        for _ in range(min(WARMUP, runs)):
            operation()
        for _ in range(runs):
            started = time.perf_counter()
            operation()
            timing.samples.append((time.perf_counter() - started) * 1000)
    except Exception as exc:  # report, never crash the run
        timing.samples, timing.error = [], f"{type(exc).__name__}: {exc}"[:300]
    return timing


def _queries_per_release(releases: list) -> list[int]:
    counts = []
    for release in releases:
        with CaptureQueriesContext(connection) as captured:
            policy_context(release, list(release.evidence.all()))
        counts.append(len(captured))
    return counts


def _failed(name: str, error: str) -> Timing:
    return Timing(name, error=error)

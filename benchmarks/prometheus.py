"""What a Prometheus scrape costs: `GET /metrics` with its bearer token, against the seeded
benchmark database (100k releases, 1M ledger entries by default).

Requests go through django.test.Client in-process, like the other pages; latencies are p50/p95
in milliseconds, queries are counted in a separate pass. Every query reads an index or a small
table, so the time follows the number of open items (pending requests, active stages) and of
decisions, not the length of the history.
"""

from __future__ import annotations

import secrets

from django.test import Client
from django.test.utils import override_settings

from benchmarks.measure import Timing, _count_queries, _timed_get

NAME = "Prometheus scrape `GET /metrics`"
PATH = "/metrics"
WARMUP = 5
QUERY_SAMPLES = 3


def measure_metrics_endpoint(requests: int) -> list[Timing]:
    """One timing of the scrape; n/a with the error when it fails."""
    token = secrets.token_urlsafe(32)
    timing = Timing(NAME)
    client = Client(headers={"authorization": f"Bearer {token}"})
    try:
        with override_settings(SIGNOFF_METRICS_TOKEN=token):
            for _ in range(WARMUP):
                _timed_get(client, PATH)
            timing.samples = [_timed_get(client, PATH)[0] for _ in range(requests)]
            timing.queries = [_count_queries(client, PATH) for _ in range(QUERY_SAMPLES)]
    except Exception as exc:  # report, never crash the run
        timing.samples, timing.error = [], f"{type(exc).__name__}: {exc}"[:300]
    return [timing]

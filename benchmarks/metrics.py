"""The metrics pages on the bench database: the rollups' refresh, then each page's p95 and
queries for the person it is for (the bench's global release manager, a CAB member, an
organisation-wide auditor for the administrators' page), as `measure.measure_auditor_pages`
times the auditors' pages."""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from benchmarks.measure import Timing, _count_queries, _timed_get, bench_auditor
from benchmarks.seed_org import Org
from governance.models import User
from reporting.metrics.models import MetricsRefresh
from reporting.metrics.rollups import refresh_metrics

WARMUP = 5


def measure_metrics_pages(org: Org, requests: int) -> list[Timing]:
    """The first refresh (a full rebuild) or an incremental one, then every metrics page."""
    refresh = Timing("Metrics rollups refresh (full on a new database, else incremental)")
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as captured:
        rebuilt = refresh_metrics(full=not MetricsRefresh.objects.exists())
    refresh.samples = [(time.perf_counter() - started) * 1000]
    refresh.queries = [len(captured)]
    refresh.name += f": {rebuilt:,} releases"
    timings = [refresh]
    for name, (user, path) in _pages(org).items():
        timings.append(_measure(name, user, path, requests))
    return timings


def _pages(org: Org) -> dict[str, tuple[User, str]]:
    cab_member = User.objects.get(pk=org.cab[0])
    auditor = bench_auditor()
    two_years_ago = timezone.localdate() - timedelta(days=730)  # the bench's whole history
    return {
        "Release metrics `GET /metrics/releases/`": (org.bot, "/metrics/releases/"),
        "CAB metrics `GET /metrics/cab/`": (cab_member, "/metrics/cab/"),
        "Approval metrics `GET /metrics/administration/`": (
            auditor,
            "/metrics/administration/",
        ),
        "Approval metrics, the last two years by approver": (
            auditor,
            f"/metrics/administration/?start={two_years_ago:%Y-%m-%d}&by=approver",
        ),
    }


def _measure(name: str, user: User, path: str, requests: int) -> Timing:
    """Timed GETs after a warm-up; n/a with the error on failure, never a crash."""
    client = Client()
    client.force_login(user)
    timing = Timing(name)
    try:
        for _ in range(min(WARMUP, requests)):
            _timed_get(client, path)
        timing.samples = [_timed_get(client, path)[0] for _ in range(requests)]
        timing.queries = [_count_queries(client, path) for _ in range(3)]
    except Exception as exc:  # report, never crash
        timing.samples, timing.error = [], f"{type(exc).__name__}: {exc}"[:300]
    return timing

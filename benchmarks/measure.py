"""The measurements: gate vs. baseline latency and queries, the queue page, ledger verification.

HTTP requests go through django.test.Client in this process: the full middleware, DRF and
template stack, no network and no server. Timings are wall-clock per request (perf_counter);
query counts come from a separate pass under CaptureQueriesContext so that recording them does
not slow the timed pass.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from approvals.models import ApprovalStage, Release
from benchmarks.urls import BASELINE_PATH
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.models import User

WARMUP = 20
QUERY_SAMPLES = 20
QUEUE_PATH = "/approvals/"


@dataclass
class Timing:
    """Latencies (ms) of one endpoint, and the SQL queries each request made."""

    name: str
    samples: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 95)

    @property
    def max_queries(self) -> int:
        return max(self.queries, default=0)


@dataclass
class ApiResult:
    gate: Timing
    baseline: Timing
    gate_statuses: Counter


@dataclass
class QueueResult:
    timing: Timing
    user: str
    decidable: int | None


@dataclass
class LedgerResult:
    entries: int
    verify_seconds: float
    raw_entries: int
    raw_seconds: float
    problem: str | None

    @property
    def verify_rate(self) -> float:
        return self.entries / self.verify_seconds if self.verify_seconds else 0.0

    @property
    def raw_rate(self) -> float:
        return self.raw_entries / self.raw_seconds if self.raw_seconds else 0.0


def percentile(samples: list[float], pct: int) -> float:
    """Linear-interpolated percentile; NaN without samples."""
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def _timed_get(client: Client, path: str) -> tuple[float, object]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(
            f"GET {path} answered {response.status_code}: {response.content[:300]!r}"
        )
    return elapsed, response


def _count_queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        client.get(path)
    return len(captured)


def measure_api(token: str, requests: int, rng: random.Random) -> ApiResult:
    """Gate and baseline, interleaved in random order on random release ids."""
    first, last = _release_id_range()
    client = Client(headers={"authorization": f"Bearer {token}"})
    gate, baseline = Timing("gate"), Timing("baseline")
    statuses: Counter = Counter()
    paths = {
        "gate": lambda: f"/api/v1/releases/{rng.randint(first, last)}/gate",
        "baseline": lambda: f"/{BASELINE_PATH}",
    }
    for _ in range(WARMUP):
        _timed_get(client, paths["gate"]())
        _timed_get(client, paths["baseline"]())
    for _ in range(requests):
        for timing in rng.sample([gate, baseline], 2):
            elapsed, response = _timed_get(client, paths[timing.name]())
            timing.samples.append(elapsed)
            if timing is gate:
                statuses[response.json()["status"]] += 1
    for _ in range(QUERY_SAMPLES):
        gate.queries.append(_count_queries(client, paths["gate"]()))
        baseline.queries.append(_count_queries(client, paths["baseline"]()))
    return ApiResult(gate=gate, baseline=baseline, gate_statuses=statuses)


def _release_id_range() -> tuple[int, int]:
    first = Release.objects.order_by("pk").values_list("pk", flat=True).first()
    last = Release.objects.order_by("-pk").values_list("pk", flat=True).first()
    if first is None or last is None:
        raise RuntimeError("No releases to ask the gate about.")
    return first, last


def measure_queue(user: User, requests: int) -> QueueResult:
    """The approver queue page for a user eligible on many pending stages; n/a on any error."""
    timing = Timing("queue")
    decidable = None
    try:
        decidable = ApprovalStage.objects.decidable_by(user).count()
        client = Client()
        client.force_login(user)
        for _ in range(min(5, requests)):
            _timed_get(client, QUEUE_PATH)
        timing.samples = [_timed_get(client, QUEUE_PATH)[0] for _ in range(requests)]
        timing.queries = [_count_queries(client, QUEUE_PATH) for _ in range(3)]
    except Exception as exc:  # report, never crash: the page may not exist yet
        timing.samples, timing.error = [], f"{type(exc).__name__}: {exc}"[:300]
    return QueueResult(timing=timing, user=user.username, decidable=decidable)


def measure_ledger() -> LedgerResult:
    """The ledger's own verify() over the whole chain, then bare SHA-256 + Ed25519 verify."""
    started = time.perf_counter()
    count, problem = ledger.verify()
    verify_seconds = time.perf_counter() - started
    raw_entries, raw_seconds = _raw_crypto()
    return LedgerResult(
        entries=count,
        verify_seconds=verify_seconds,
        raw_entries=raw_entries,
        raw_seconds=raw_seconds,
        problem=str(problem) if problem else None,
    )


def _raw_crypto(batch: int = 5000) -> tuple[int, float]:
    """Seconds spent in hashlib.sha256 + Ed25519 verify alone, over the same canonical bytes.

    The bytes are rebuilt from the stored rows outside the timed part, a batch at a time.
    """
    keys = ledger.public_keys()
    total, seconds, pending = 0, 0.0, []
    for entry in ledger.stored_entries():
        pending.append(_signed_bytes(entry, keys))
        if len(pending) >= batch:
            seconds += _verify_batch(pending)
            total, pending = total + len(pending), []
    seconds += _verify_batch(pending)
    return total + len(pending), seconds


def _signed_bytes(entry: dict, keys: dict) -> tuple[bytes, bytes, object]:
    body = ledger_format.canonical_bytes(
        seq=entry["seq"],
        recorded_at=entry["recorded_at"],
        kind=entry["kind"],
        subject=entry["subject"],
        actor=entry["actor"],
        payload=entry["payload"],
        prev_hash=entry["prev_hash"],
    )
    return body, bytes.fromhex(entry["signature"]), keys[entry["key_id"]]


def _verify_batch(items: list[tuple[bytes, bytes, object]]) -> float:
    started = time.perf_counter()
    for body, signature, key in items:
        key.verify(signature, hashlib.sha256(body).digest())
    return time.perf_counter() - started


AUDITOR = "bench-auditor"


def auditor_paths() -> dict[str, str]:
    """The auditors' pages, named: the home, the ledger page, and the audit trail unfiltered,
    filtered by a service and an older page deep in the history (a keyset cursor)."""
    from django.db.models.fields.json import KT

    from governance.models import LedgerEntry

    middle = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    service = (
        LedgerEntry.objects.filter(payload__has_key="service")
        .order_by("-seq")
        .values_list(KT("payload__service"), flat=True)
        .first()
    )
    return {
        "Reports home `GET /reports/`": "/reports/",
        "Ledger page `GET /reports/ledger/`": "/reports/ledger/",
        "Audit trail `GET /reports/audit/`": "/reports/audit/",
        "Audit trail, one service": f"/reports/audit/?service={service}",
        "Audit trail, an older page mid-ledger": f"/reports/audit/?older={middle // 2}.*.*",
    }


def bench_auditor() -> User:
    """An auditor of the whole organisation (granted once; later runs reuse the grant)."""
    from governance.authority.selectors import auditor_grants
    from governance.authority.services import grant_role
    from governance.models import Role

    auditor, _ = User.objects.get_or_create(username=AUDITOR)
    if not auditor_grants().filter(user=auditor, service=None, team=None).exists():
        grant_role(
            user=auditor, role=Role.AUDITOR, service=None, reason="benchmark auditor", actor=None
        )
    return auditor


def measure_auditor_pages(requests: int) -> list[Timing]:
    """Each auditor page for an organisation-wide auditor; n/a with the error on failure."""
    auditor = bench_auditor()
    client = Client()
    client.force_login(auditor)
    timings = []
    for name, path in auditor_paths().items():
        timing = Timing(name)
        try:
            for _ in range(min(5, requests)):
                _timed_get(client, path)
            timing.samples = [_timed_get(client, path)[0] for _ in range(requests)]
            timing.queries = [_count_queries(client, path) for _ in range(3)]
        except Exception as exc:  # report, never crash
            timing.samples, timing.error = [], f"{type(exc).__name__}: {exc}"[:300]
        timings.append(timing)
    return timings

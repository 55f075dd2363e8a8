"""The auditors' streamed exports against PostgreSQL's own `COPY ... TO STDOUT` of the same rows.

Each export runs in a fresh Python process (`python -m benchmarks.exports compliance|ledger`),
so its peak resident memory (VmHWM) says what the stream itself costs, not what seeding
left behind. The child streams the generator its view streams (the compliance CSV's
`csv_lines` over `ComplianceReport`, the ledger's `export_lines`), counts the bytes, and then
times COPY of the same rows on the same connection.

The compliance report covers releases to regulated environments of services carrying the
framework: the seeded data tag a quarter of the services SOX and regulate production only. To
stream all 100,000 releases, the child tags every service SOX and regulates every environment
inside a transaction that it rolls back at the end: nothing stays changed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date

COMPLIANCE_COPY = """
COPY (
    SELECT c.ref, s.name, e.name, r.version, r.digest, r.created_at, u.username,
        r.triggered_by_name, a.status,
        (SELECT string_agg(
                d.verdict || ' ' || p.username || ' ' || st.name || ' ' || d.created_at
                    || ' ' || d.rationale || ' ' || d.step_up_method, ' | ' ORDER BY d.id)
            FROM approvals_decision d
            JOIN governance_user p ON p.id = d.approver_id
            JOIN approvals_approvalstage st ON st.id = d.stage_id
            WHERE d.request_id = a.id),
        (SELECT string_agg(v.kind || ':' || v.status, ', ' ORDER BY v.id)
            FROM approvals_evidence v WHERE v.release_id = r.id),
        (SELECT string_agg(
                dp.status || ' ' || dp.approved || ' ' || dp.created_at, ' | ' ORDER BY dp.id)
            FROM approvals_deployment dp WHERE dp.release_id = r.id)
    FROM approvals_release r
    JOIN governance_service s ON s.id = r.service_id
    JOIN governance_environment e ON e.id = r.environment_id
    JOIN changes_changerecord c ON c.id = r.change_id
    JOIN governance_user u ON u.id = r.requested_by_id
    LEFT JOIN approvals_approvalrequest a ON a.release_id = r.id
    ORDER BY r.created_at, r.id
) TO STDOUT WITH (FORMAT csv, HEADER)
"""

LEDGER_COPY = """
COPY (
    SELECT seq, recorded_at, kind, subject, actor, payload, prev_hash, entry_hash, key_id,
        signature
    FROM governance_ledgerentry ORDER BY seq
) TO STDOUT
"""


@dataclass
class ExportResult:
    name: str
    rows: int
    bytes: int
    seconds: float
    copy_bytes: int
    copy_seconds: float
    rss_before_mib: float
    rss_peak_mib: float
    error: str | None = None

    @property
    def rate(self) -> float:
        """Rows per second of the export."""
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def copy_ratio(self) -> float:
        """The export's throughput as a share of COPY's (in bytes per second)."""
        if not (self.seconds and self.copy_seconds and self.copy_bytes):
            return 0.0
        return (self.bytes / self.seconds) / (self.copy_bytes / self.copy_seconds)

    @property
    def rss_growth_mib(self) -> float:
        return max(0.0, self.rss_peak_mib - self.rss_before_mib)


def measure_exports() -> list[ExportResult]:
    """Both exports, each in its own process with the benchmark's environment."""
    return [_in_child(name) for name in ("compliance", "ledger")]


def _in_child(name: str) -> ExportResult:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.exports", name],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return ExportResult(name, 0, 0, 0.0, 0, 0.0, 0.0, 0.0, error=tail[0])
    return ExportResult(**json.loads(done.stdout.strip().splitlines()[-1]))


# --- In the child process ------------------------------------------------------------------------


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM). Not `ru_maxrss`: Linux carries that over
    from the parent across exec, so a child of the big benchmark process would report its peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup() -> None:
    import warnings

    import django

    django.setup()
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)


def _drain(lines) -> tuple[int, int, float]:
    """(lines, bytes, seconds) of consuming a stream of text lines as a response would."""
    count = size = 0
    started = time.perf_counter()
    for line in lines:
        size += len(line.encode())
        count += 1
    return count, size, time.perf_counter() - started


def _drain_lines(chunks) -> tuple[int, int, float]:
    """(lines, bytes, seconds) of consuming a stream of chunks of whole lines."""
    count = size = 0
    started = time.perf_counter()
    for chunk in chunks:
        size += len(chunk.encode())
        count += chunk.count("\n")
    return count, size, time.perf_counter() - started


def _copy(statement: str) -> tuple[int, float]:
    from django.db import connection

    connection.ensure_connection()
    size = 0
    started = time.perf_counter()
    with connection.connection.cursor() as cursor, cursor.copy(statement) as copy:
        for block in copy:
            size += len(block)
    return size, time.perf_counter() - started


def _compliance() -> ExportResult:
    from django.db import connection, transaction

    from benchmarks.measure import bench_auditor
    from governance.models import Environment, Service
    from reporting.compliance.formats import csv_lines
    from reporting.compliance.report import ComplianceReport, ReportQuery

    auditor = bench_auditor()  # an auditor of everything sees every release
    with transaction.atomic():
        Service.objects.update(compliance_tags=["SOX"])
        Environment.objects.update(regulated=True)
        query = ReportQuery("SOX", date(2000, 1, 1), date(2100, 1, 1))
        # Warm up: imports, the policy's control labels, the first batch.
        warm = csv_lines(ComplianceReport(query, auditor).batches())
        _drain(line for _, line in zip(range(600), warm, strict=False))
        before = _peak_mib()
        lines, size, seconds = _drain(csv_lines(ComplianceReport(query, auditor).batches()))
        peak = _peak_mib()
        connection.cursor().execute("SET LOCAL work_mem = '64MB'")
        copy_size, copy_seconds = _copy(COMPLIANCE_COPY)
        transaction.set_rollback(True)
    return ExportResult(
        "compliance", lines - 1, size, seconds, copy_size, copy_seconds, before, peak
    )


def _ledger() -> ExportResult:
    from governance.ledger.export import export_chunks, export_lines

    _drain(line for _, line in zip(range(2000), export_lines(), strict=False))
    before = _peak_mib()
    lines, size, seconds = _drain_lines(export_chunks())
    peak = _peak_mib()
    copy_size, copy_seconds = _copy(LEDGER_COPY)
    return ExportResult("ledger", lines - 1, size, seconds, copy_size, copy_seconds, before, peak)


def main(name: str) -> int:
    _setup()
    result = {"compliance": _compliance, "ledger": _ledger}[name]()
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

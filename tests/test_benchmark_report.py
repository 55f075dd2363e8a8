"""docs/benchmarks.md has two writers: `make bench` rewrites it, `make load` owns one section.

Pure functions on text: no database, no servers.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from benchmarks.load import (
    BEGIN,
    END,
    Check,
    Outcome,
    endpoint_figures,
    extract_load_section,
    load_section,
    parse_args,
    replace_load_section,
)
from benchmarks.load_clients import Sample
from benchmarks.load_processes import Replicas
from benchmarks.measure import ApiResult, LedgerResult, QueueResult, Timing
from benchmarks.report import (
    MUTATION_BEGIN,
    MUTATION_END,
    Results,
    keep_load_section,
    keep_mutation_section,
    markdown,
)

LOAD = f"{BEGIN}\n## Load test\n\n| Endpoint | p95 |\n|---|---|\n| decisions | 120 ms |\n{END}"


def bench_results() -> Results:
    timing = Timing(name="gate", samples=[1.0, 2.0, 3.0], queries=[3])
    return Results(
        api=ApiResult(gate=timing, baseline=timing, gate_statuses=Counter({"approved": 3})),
        queue=QueueResult(timing=timing, user="queue-approver", decidable=3),
        ledger=LedgerResult(
            entries=10, verify_seconds=1.0, raw_entries=10, raw_seconds=1.0, problem=None
        ),
        phases={"start and migrate": 0.5},
        seed_total_seconds=1.0,
        total_seconds=2.0,
        requests=3,
        command="python -m benchmarks.run",
    )


def test_bench_report_carries_the_load_section_over():
    previous = f"# Benchmarks\n\nold figures\n\n{LOAD}\n"
    generated = "# Benchmarks\n\nnew figures\n"

    assert keep_load_section(previous, generated) == f"# Benchmarks\n\nnew figures\n\n{LOAD}\n"


def test_bench_report_without_a_previous_load_section_is_unchanged():
    generated = "# Benchmarks\n\nnew figures\n"

    assert keep_load_section("# Benchmarks\n\nold figures\n", generated) == generated
    assert keep_load_section("", generated) == generated


def test_bench_markdown_keeps_the_load_section_of_the_previous_report():
    text = markdown(bench_results(), {"CPUs (nproc)": "2"}, {"Releases": 3}, previous=LOAD)

    assert text.startswith("# Benchmarks\n")
    assert "| Gate p95 |" in text
    assert extract_load_section(text) == LOAD
    assert text.endswith(f"{LOAD}\n")


def test_load_section_is_replaced_in_place_and_nothing_else_changes():
    document = f"# Benchmarks\n\nbench figures\n\n{BEGIN}\nold load figures\n{END}\n\n## After\n"
    new = f"{BEGIN}\nnew load figures\n{END}"

    assert replace_load_section(document, new) == (
        f"# Benchmarks\n\nbench figures\n\n{new}\n\n## After\n"
    )


def test_load_section_is_appended_when_the_report_has_none():
    assert replace_load_section("# Benchmarks\n\nbench figures\n", LOAD) == (
        f"# Benchmarks\n\nbench figures\n\n{LOAD}\n"
    )


def test_unterminated_load_marker_is_not_a_section():
    assert extract_load_section(f"# Benchmarks\n{BEGIN}\nhalf a section\n") is None


def test_a_stray_begin_marker_above_the_section_is_left_alone():
    document = f"# Benchmarks\n{BEGIN}\nstray\n\n{LOAD}\n"

    assert extract_load_section(document) == LOAD


def test_the_mutation_testing_section_survives_a_benchmark_run():
    section = f"{MUTATION_BEGIN}\n## Mutation testing\n\nscores\n{MUTATION_END}"
    previous = f"# Benchmarks\n\nold figures\n\n{section}\n"

    kept = keep_mutation_section(previous, "# Benchmarks\n\nnew figures\n")

    assert kept == f"# Benchmarks\n\nnew figures\n\n{section}\n"
    assert keep_mutation_section("# Benchmarks\n", "new\n") == "new\n"


def test_export_rows_compare_with_copy_and_judge_memory():
    from benchmarks.exports import ExportResult

    results = bench_results()
    mib = 1024 * 1024
    results.exports = [
        ExportResult("compliance", 1000, 40 * mib, 4.0, 60 * mib, 3.0, 80.0, 95.5),
        ExportResult("ledger", 10, 0, 0.0, 0, 0.0, 0.0, 0.0, error="ValueError: boom"),
    ]
    text = markdown(results, {}, {}, previous="")

    assert (
        "| Compliance CSV `GET /reports/compliance.csv`, 1,000 rows streamed | 250 rows/s |" in text
    )
    # 10 MiB/s against COPY's 20 MiB/s: half, which meets the goal.
    assert "the export runs at 0.50 of it (goal ≥ 0.5: met)" in text
    assert "| ... peak RSS growth while streaming | 15.5 MiB | < 50 MB: within budget" in text
    assert "| Ledger export `GET /reports/ledger.jsonl` | n/a | ValueError: boom |" in text


def test_auditor_page_rows_show_p95_p50_and_queries():
    results = bench_results()
    results.pages = [
        Timing(name="Audit trail `GET /reports/audit/`", samples=[10.0, 20.0, 30.0], queries=[9]),
        Timing(name="Ledger page `GET /reports/ledger/`", error="RuntimeError: 500"),
    ]
    text = markdown(results, {}, {}, previous="")

    assert (
        "| Audit trail `GET /reports/audit/` p95 | 29.00 ms | p50 20.00 ms; 9 SQL queries |" in text
    )
    assert "| Ledger page `GET /reports/ledger/` p95 | n/a | RuntimeError: 500 |" in text


def load_outcome(
    web: int, workers: int, decision_seconds: list[float], lags: list, checks: list[Check]
) -> Outcome:
    """A run of 10 s in which the decisions took `decision_seconds` and the gate 10 ms."""
    samples = [Sample("POST decisions", 201, seconds, True) for seconds in decision_seconds]
    samples += [Sample("GET gate", 200, 0.01, True)] * 4
    return Outcome(
        replicas=Replicas(web, workers, gunicorn_workers=2, threads=4, concurrency=2),
        started_at=datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        wall_seconds=10.0,
        client_cpu_seconds=1.0,
        machine_busy=0.5,
        load_average="1.00, 1.00, 1.00",
        figures=endpoint_figures(samples, 10.0),
        checks=checks,
        facts={
            "releases": [{"status": "approved"}],
            "decisions": [{}] * len(decision_seconds),
            "ledger_entries": 7,
            "notification_lags": lags,
        },
        lock_waits="none in 10 samples",
        cpu={"web": 4.0, "worker": 1.0, "beat": 0.0, "postgres": 1.0},
        drain_seconds=0.5,
        anomalies=[],
        examples={},
    )


def test_load_section_shows_the_configurations_side_by_side():
    ledger = Check("manage.py verify_ledger", True, "exit 0")
    unsent = Check("Every notification queued was sent (outbox drained)", False, "1 not sent")
    single = load_outcome(1, 1, [0.04, 0.06], lags=[0.5, 1.5], checks=[ledger])
    replicas = load_outcome(2, 2, [0.05, 0.25], lags=[0.5, None], checks=[ledger, unsent])
    args = parse_args(["--web-replicas", "2", "--worker-replicas", "2"])

    text = load_section([single, replicas], args, "python -m benchmarks.load", {})

    assert text.startswith(BEGIN) and text.endswith(END)
    assert "### Results (2026-12-07 12:00 UTC): **FAIL**" in text
    assert "|  | 1 web + 1 worker | 2 web + 2 workers |" in text
    assert "| `POST decisions` p50 / p95 | 50.0 ms / 59.0 ms | 150 ms / 240 ms |" in text
    assert "| `GET gate` p50 / p95 | 10.0 ms / 10.0 ms | 10.0 ms / 10.0 ms |" in text
    assert "| Requests (req/s) | 6 (0.6/s) | 6 (0.6/s) |" in text
    # 6 CPU seconds for 6 requests.
    assert "| Server CPU per request | 1000 ms | 1000 ms |" in text
    assert (
        "| Notification delivery lag | p50 1.00 s, p95 1.45 s, max 1.50 s; 2 sent, 0 never "
        "| p50 0.50 s, p95 0.50 s, max 0.50 s; 1 sent, 1 never |"
    ) in text
    # One failed check fails its configuration, and the whole run.
    assert "| Verdict | **PASS** | **FAIL** |" in text
    assert (
        "| Errors | 0 x 5xx, 0 unanswered; checks failed: 0 "
        "| 0 x 5xx, 0 unanswered; checks failed: 1 |"
    ) in text
    assert "### 1 web + 1 worker: PASS" in text
    assert "### 2 web + 2 workers: **FAIL**" in text
    assert "| Every notification queued was sent (outbox drained) | **FAIL** | 1 not sent |" in text

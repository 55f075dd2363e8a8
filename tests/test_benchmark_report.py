"""docs/benchmarks.md has two writers: `make bench` rewrites it, `make load` owns one section.

Pure functions on text: no database, no servers.
"""

from __future__ import annotations

from collections import Counter

from benchmarks.load import BEGIN, END, extract_load_section, replace_load_section
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

"""Each metric as a panel: a chart, the same numbers as a table, and those rows as CSV.

A panel's rows are what the table shows and what the CSV holds, cell for cell: hours with two
decimals, rates as percentages with one, so whatever a person reads on the page they can also
download. Charts show at most MAX_GROUPS groups (the busiest); tables and CSV show all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from reporting import charts
from reporting.metrics import selectors
from reporting.metrics.forms import BREAKDOWNS
from reporting.metrics.selectors import Filters

MAX_GROUPS = 12
LABEL_LENGTH = 14
BLUE, ORANGE, RED, GREEN = "#3b6fd8", "#f08c00", "#c92a2a", "#2f9e44"


@dataclass
class Panel:
    """One chart with its numbers; `name` is how `?format=csv&chart=` asks for its CSV."""

    name: str
    title: str
    blurb: str
    columns: list[str]
    rows: list[list[str]]
    chart: dict
    stats: list[tuple[str, str]] = field(default_factory=list)


def hours(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 3600:.2f}"


def percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{fraction * 100:.1f}"


def quarter_label(quarter: date) -> str:
    return f"{quarter.year} Q{(quarter.month - 1) // 3 + 1}"


def _short(label: str) -> str:
    return label if len(label) <= LABEL_LENGTH else label[: LABEL_LENGTH - 1] + "…"


def _chart(
    labels: list[str], series: list[charts.Series], unit: str, description: str, **options
) -> dict:
    """A grouped bar chart over the first MAX_GROUPS labels, each bar titled with its value."""
    labels = labels[:MAX_GROUPS]
    series = [charts.Series(s.name, s.values[:MAX_GROUPS], s.colour) for s in series]
    titles = [
        [
            f"{label}, {one.name}: {value:.1f} {unit}"
            for label, value in zip(labels, one.values, strict=True)
        ]
        for one in series
    ]
    return charts.bar_chart(
        [_short(label) for label in labels], series, titles, description=description, **options
    )


def _in_hours(values: list[float | None]) -> list[float]:
    return [(value or 0) / 3600 for value in values]


def time_to_approve(filters: Filters, by: str) -> Panel:
    rows = selectors.time_to_approve(filters, by)
    dimension = dict(BREAKDOWNS)[by]
    labels = [str(row["label"]) for row in rows]
    return Panel(
        name="time_to_approve",
        title=f"Time to approve by {dimension.lower()}",
        blurb=_TIME_BLURBS[by],
        columns=[dimension, "Count", "Mean (h)", "p50 (h)", "p90 (h)"],
        rows=[
            [label, str(row["count"]), hours(row["mean"]), hours(row["p50"]), hours(row["p90"])]
            for label, row in zip(labels, rows, strict=True)
        ],
        chart=_chart(
            labels,
            [
                charts.Series("p50", _in_hours([row["p50"] for row in rows]), BLUE),
                charts.Series("p90", _in_hours([row["p90"] for row in rows]), ORANGE),
            ],
            "h",
            _describe_slowest(labels, rows, "p90", "takes longest to approve"),
            minimum_top=1,
        ),
    )


_TIME_BLURBS = {
    **dict.fromkeys(
        ("change_type", "environment", "service", "team"),
        "From request to approval, for requests approved in the period.",
    ),
    "stage": "From a stage's activation to its approval, for stages approved in the period.",
    "approver": "From a stage's activation to each approver's approval of it.",
}


def _describe_slowest(labels: list[str], rows: list[dict], key: str, phrase: str) -> str:
    if not rows:
        return "Nothing to show in this period."
    slowest = max(range(len(rows)), key=lambda i: rows[i][key] or 0)
    return f"{labels[slowest]} {phrase}: {hours(rows[slowest][key])} hours at {key}."


def bottleneck_stages(filters: Filters, by: str) -> Panel:
    rows = selectors.bottleneck_stages(filters)
    labels = [row["label"] for row in rows]
    return Panel(
        name="bottleneck_stages",
        title="Where releases wait: stages",
        blurb="Hours releases spent waiting in each stage: finished in the period, and open now.",
        columns=[
            "Stage",
            "Finished",
            "Waited (h)",
            "Mean (h)",
            "p90 (h)",
            "Open now",
            "Waiting now (h)",
        ],
        rows=[
            [
                row["label"],
                str(row["finished"]),
                hours(row["total"]),
                hours(row["mean"]),
                hours(row["p90"]),
                str(row["open"]),
                hours(row["waiting_now"]),
            ]
            for row in rows
        ],
        chart=_chart(
            labels,
            [
                charts.Series("Finished", _in_hours([row["total"] for row in rows]), BLUE),
                charts.Series("Open now", _in_hours([row["waiting_now"] for row in rows]), RED),
            ],
            "h",
            _describe_slowest(labels, rows, "total", "held releases longest"),
            minimum_top=1,
        ),
    )


def bottleneck_people(filters: Filters, by: str) -> Panel:
    rows = selectors.bottleneck_people(filters)
    labels = [row["label"] for row in rows]
    return Panel(
        name="bottleneck_people",
        title="Where releases wait: approvers",
        blurb="Hours from a stage's activation to each approver's decision, summed per approver.",
        columns=["Approver", "Decisions", "Waited (h)", "Mean (h)", "p90 (h)"],
        rows=[
            [label, str(row["count"]), hours(row["total"]), hours(row["mean"]), hours(row["p90"])]
            for label, row in zip(labels, rows, strict=True)
        ],
        chart=_chart(
            labels,
            [charts.Series("Waited", _in_hours([row["total"] for row in rows]), BLUE)],
            "h",
            _describe_slowest(labels, rows, "total", "kept releases waiting longest"),
            minimum_top=1,
        ),
    )


def sla(filters: Filters, by: str) -> Panel:
    rows = selectors.sla_attainment(filters)
    labels = [row["label"] for row in rows]
    return Panel(
        name="sla",
        title="Approval SLAs",
        blurb="Stages with a due time from the policy: met, breached, and open past due.",
        columns=[
            "Stage",
            "SLA target (h)",
            "Finished",
            "Met",
            "Breached",
            "Open overdue",
            "Attainment (%)",
            "Breach rate (%)",
        ],
        rows=[
            [
                row["label"],
                _target(row),
                str(row["finished"]),
                str(row["met"]),
                str(row["breached"]),
                str(row["overdue"]),
                percent(row["attainment"]),
                percent(row["breach_rate"]),
            ]
            for row in rows
        ],
        chart=_chart(
            labels,
            [
                charts.Series("Attainment", [row["attainment"] * 100 for row in rows], GREEN),
                charts.Series("Breaches", [row["breach_rate"] * 100 for row in rows], RED),
            ],
            "%",
            _describe_rate(labels, rows, "breach_rate", "breaches its SLA most"),
            top=100,
        ),
    )


def _target(row: dict) -> str:
    """One target, or the range when the policy changed it within the period."""
    if row["shortest"] == row["longest"]:
        return hours(row["shortest"])
    return f"{hours(row['shortest'])} to {hours(row['longest'])}"


def _describe_rate(labels: list[str], rows: list[dict], key: str, phrase: str) -> str:
    rated = [i for i, row in enumerate(rows) if row[key] is not None]
    if not rated:
        return "Nothing to show in this period."
    worst = max(rated, key=lambda i: rows[i][key])
    return f"{labels[worst]} {phrase}: {percent(rows[worst][key])}%."


def abandonment(filters: Filters, by: str) -> Panel:
    numbers = selectors.abandonment(filters)
    reasons = numbers["reasons"]
    labels = [row["label"] for row in reasons]
    rate = numbers["abandoned"] / numbers["requests"] if numbers["requests"] else None
    return Panel(
        name="abandonment",
        title="Abandoned requests",
        blurb=(
            "Requests closed in the period without an approval, and pending ones whose expiry "
            "passed with nobody deciding. A rejected request asked again counts as superseded."
        ),
        columns=["Reason", "Requests", "Share of requests (%)"],
        rows=[[row["label"], str(row["count"]), percent(row["share"])] for row in reasons],
        chart=_chart(
            labels,
            [charts.Series("Requests", [row["count"] for row in reasons], ORANGE)],
            "requests",
            f"{numbers['abandoned']} of {numbers['requests']} requests abandoned.",
        ),
        stats=[
            ("Requests", str(numbers["requests"])),
            ("Abandoned", str(numbers["abandoned"])),
            ("Abandonment rate (%)", percent(rate)),
        ],
    )


def outcomes_by_delay(filters: Filters, by: str) -> Panel:
    rows = selectors.outcomes_by_delay(filters)
    labels = [row["label"] for row in rows]
    return Panel(
        name="outcomes_by_delay",
        title="Does a longer wait buy safer releases?",
        blurb=(
            "Approved releases by their time to approve; failure and rollback rates among "
            "those deployed (a deployment failed, rolled back or failed verification is a failure)."
        ),
        columns=[
            "Time to approve",
            "Approved",
            "Deployed",
            "Failed",
            "Rolled back",
            "Failure rate (%)",
            "Rollback rate (%)",
        ],
        rows=[
            [
                row["label"],
                str(row["approved"]),
                str(row["deployed"]),
                str(row["failed"]),
                str(row["rolled_back"]),
                percent(row["failure_rate"]),
                percent(row["rollback_rate"]),
            ]
            for row in rows
        ],
        chart=_chart(
            labels,
            [
                charts.Series("Failure rate", [(r["failure_rate"] or 0) * 100 for r in rows], RED),
                charts.Series(
                    "Rollback rate", [(r["rollback_rate"] or 0) * 100 for r in rows], ORANGE
                ),
            ],
            "%",
            _describe_rate(labels, rows, "failure_rate", "fails most often"),
            top=100,
        ),
    )


def exceptions(filters: Filters, by: str) -> Panel:
    rows = selectors.exceptions_by_quarter(filters)
    labels = [quarter_label(row["quarter"]) for row in rows]
    total = sum(row["emergencies"] + row["overrides"] for row in rows)
    return Panel(
        name="exceptions",
        title="Emergency bypasses and policy exceptions per quarter",
        blurb="Emergencies declared, and freeze overrides confirmed, per calendar quarter.",
        columns=["Quarter", "Emergency bypasses", "Freeze overrides"],
        rows=[
            [label, str(row["emergencies"]), str(row["overrides"])]
            for label, row in zip(labels, rows, strict=True)
        ],
        chart=_chart(
            labels,
            [
                charts.Series("Emergency bypasses", [r["emergencies"] for r in rows], RED),
                charts.Series("Freeze overrides", [r["overrides"] for r in rows], ORANGE),
            ],
            "",
            f"{total} exceptions over {len(rows)} quarters.",
        ),
    )


def unapproved(filters: Filters, by: str) -> Panel:
    rows = selectors.unapproved_by_quarter(filters)
    labels = [quarter_label(row["quarter"]) for row in rows]
    total = sum(row["releases"] for row in rows)
    return Panel(
        name="unapproved",
        title="Unapproved deployments per quarter",
        blurb="Releases deployed without the gate's approval, by the quarter it was last reported.",
        columns=["Quarter", "Releases deployed unapproved"],
        rows=[[label, str(row["releases"])] for label, row in zip(labels, rows, strict=True)],
        chart=_chart(
            labels,
            [charts.Series("Releases", [row["releases"] for row in rows], RED)],
            "releases",
            f"{total} releases deployed without approval over {len(rows)} quarters.",
        ),
    )


PANELS: dict[str, Callable[[Filters, str], Panel]] = {
    "time_to_approve": time_to_approve,
    "abandonment": abandonment,
    "outcomes_by_delay": outcomes_by_delay,
    "bottleneck_stages": bottleneck_stages,
    "bottleneck_people": bottleneck_people,
    "sla": sla,
    "exceptions": exceptions,
    "unapproved": unapproved,
}

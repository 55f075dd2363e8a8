"""Bar charts drawn on the server as SVG geometry, for templates to render without any script.

A chart is one or more series of bars over the same labels (grouped side by side when there are
several, e.g. p50 and p90). The template draws each bar as a <rect> with its own <title>
tooltip; the numbers also go in a table beside the chart and in a CSV, so the drawing never has
to carry exact values. The CSP forbids inline styles: colours are SVG presentation attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CHART_WIDTH, CHART_HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 12, 44
MAX_LABELS = 13  # x-axis labels shown at most; every bar keeps its own tooltip
GROUP_SHARE = 0.7  # of each label's slot taken by its bars; the rest separates the groups


@dataclass(frozen=True)
class Series:
    """One kind of bar: its name (for the legend), colour and one value per label."""

    name: str
    values: list[float]
    colour: str = "#c92a2a"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str
    label: str  # shown under the axis, or "" to keep labels from overlapping
    label_x: float
    colour: str = "#c92a2a"


def bar_chart(
    labels: list[str],
    series: list[Series],
    titles: list[list[str]],
    *,
    description: str,
    minimum_top: float = 4,
    top: float | None = None,
) -> dict:
    """Geometry for a template's SVG: bars, y-axis ticks, legend and the accessible text.

    `titles[s][i]` is the tooltip of series s at label i. `minimum_top` keeps a quiet chart
    from looking alarming: a single emergency should not fill the plot. A fixed `top` (100
    for percentages) keeps charts of rates comparable with each other.
    """
    plot_height = CHART_HEIGHT - TOP - BOTTOM
    largest = max((value for one in series for value in one.values), default=0)
    top = top or axis_top(max(largest, minimum_top))
    ticks = [
        {"value": _tidy(value), "y": round(TOP + plot_height - plot_height * value / top, 1)}
        for value in tick_values(top)
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": LEFT,
        "tick_label_x": LEFT - 6,
        "right": CHART_WIDTH - RIGHT,
        "baseline": TOP + plot_height,
        "tick_end_y": TOP + plot_height + 4,
        "label_y": TOP + plot_height + 18,
        "bars": _bars(labels, series, titles, top, plot_height),
        "ticks": ticks,
        "legend": [{"name": one.name, "colour": one.colour} for one in series]
        if len(series) > 1
        else [],
        "description": description,
    }


def _bars(
    labels: list[str], series: list[Series], titles: list[list[str]], top: float, plot_height: int
) -> list[Bar]:
    """One bar per label and series, in proportion to the axis top; labels thinned to MAX_LABELS."""
    step = (CHART_WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    width = step * GROUP_SHARE / max(len(series), 1)
    every = -(-len(labels) // MAX_LABELS)  # ceiling division
    bars = []
    for index, label in enumerate(labels):
        start = LEFT + index * step + step * (1 - GROUP_SHARE) / 2
        for number, one in enumerate(series):
            height = plot_height * one.values[index] / top
            bars.append(
                Bar(
                    x=round(start + number * width, 1),
                    y=round(TOP + plot_height - height, 1),
                    width=round(width, 1),
                    height=round(height, 1),
                    title=titles[number][index],
                    # The label goes once per group, with its first bar.
                    label=label if index % every == 0 and number == 0 else "",
                    label_x=round(LEFT + index * step + step / 2, 1),
                    colour=one.colour,
                )
            )
    return bars


def axis_top(largest: float) -> float:
    """A round top for the y axis: 1, 2 or 5 times a power of ten, times at most four."""
    if largest <= 0:
        return 1
    unit = 10 ** math.floor(math.log10(largest / 4))
    for multiple in (1, 2, 5, 10):
        if largest <= unit * multiple * 4:
            return _tidy(unit * multiple * 4)
    return largest


def tick_values(top: float) -> list[float]:
    """Five ticks, 0 to the top, a quarter apart (the top is always a multiple of four units)."""
    return [top * quarter / 4 for quarter in range(5)]


def _tidy(value: float) -> float:
    """4.0 shows as 4 and 0.30000000000000004 as 0.3 on the axis."""
    return int(value) if value == int(value) else round(value, 6)

"""Small line charts as inline SVG, drawn on the server: no script, no library, no build step.

A chart covers a fixed time range (the status page: the last 24 hours); each series is a list
of (minute, value) points, and a minute without a sample breaks the line, so a worker that was
down shows as a gap rather than as a slope. Every value written into the SVG is a number or
escaped text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

WIDTH, HEIGHT = 340, 120
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 20  # the plot's margins, for the axis labels
GAP = timedelta(minutes=2)  # points further apart than this are not joined

Point = tuple[datetime, float | None]


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    color: str
    points: Sequence[Point]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^n at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def chart(
    title: str, series: Sequence[Series], start: datetime, end: datetime, unit: str = ""
) -> str:
    """A titled figure: the SVG, its legend with each series' latest value and peak."""
    span = (end - start).total_seconds() or 1.0
    values = [v for s in series for _, v in s.points if v is not None]
    top = nice_ceiling(max(values, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        return LEFT + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - min(value / top, 1.0))

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" data-points="{len(values)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h / 2:.1f}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h / 2:.1f}" class="grid"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" class="axis" text-anchor="end">{_number(top)}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" class="axis" text-anchor="end">0</text>',
    ]
    for fraction, label in ((0.0, "-24 h"), (0.5, "-12 h"), (1.0, "now")):
        anchor = {0.0: "start", 1.0: "end"}.get(fraction, "middle")
        parts.append(
            f'<text x="{LEFT + plot_w * fraction:.1f}" y="{HEIGHT - 5}" class="axis" '
            f'text-anchor="{anchor}">{label}</text>'
        )
    for one in series:
        for run in _runs(one.points):
            if len(run) == 1:
                ((at, value),) = run
                parts.append(
                    f'<circle cx="{x(at):.1f}" cy="{y(value):.1f}" r="2" fill="{one.color}" '
                    f'class="series" data-series="{escape(one.name)}"/>'
                )
                continue
            coordinates = " ".join(f"{x(at):.1f},{y(value):.1f}" for at, value in run)
            parts.append(
                f'<polyline points="{coordinates}" fill="none" stroke="{one.color}" '
                f'stroke-width="1.5" class="series" data-series="{escape(one.name)}"/>'
            )
    if not values:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2 - 4}" class="empty" '
            'text-anchor="middle">no samples in the last 24 h</text>'
        )
    parts.append("</svg>")
    legend = "".join(_legend(one, unit) for one in series)
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>{"".join(parts)}'
        f'<div class="legend">{legend}</div></figure>'
    )


def _runs(points: Sequence[Point]) -> list[list[tuple[datetime, float]]]:
    """The points with a value, cut where a sample is missing."""
    runs: list[list[tuple[datetime, float]]] = []
    last: datetime | None = None
    for at, value in points:
        if value is None:
            last = None
            continue
        if last is None or at - last > GAP:
            runs.append([])
        runs[-1].append((at, value))
        last = at
    return runs


def _legend(series: Series, unit: str) -> str:
    values = [v for _, v in series.points if v is not None]
    latest = f"{_number(values[-1])}{unit}" if values else "-"
    peak = f", peak {_number(max(values))}{unit}" if values else ""
    return (
        f'<span><i style="background:{series.color}"></i>{escape(series.name)}: '
        f"<b>{latest}</b>{peak}</span>"
    )


def _number(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.2g}" if value < 1 else f"{value:.1f}"

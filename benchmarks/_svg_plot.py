"""A small SVG strip plot, written by hand so that the benchmarks need no plotting library.

``strip_plot`` draws one panel per measure side by side; in each, one column per
client with a dot per round (runs told apart by shade) and a bar at the median.
"""

from __future__ import annotations

import math
import statistics
from html import escape

PANEL_W = 330
PANEL_H = 300
MARGIN_L = 62
MARGIN_T = 64
MARGIN_B = 52
GAP = 40
COLOURS = {"opex_trio": "#1f6fb4", "handwritten": "#2b9348", "mcp_sdk": "#c8553d"}


def _nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(math.ceil(high / step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == 0 else f"{value:.3g}"


def strip_plot(
    panels: list[tuple[str, dict[str, list[list[float]]]]],
    title: str,
    notes: list[str],
    *,
    log: bool = False,
) -> str:
    """SVG text. ``panels``: (axis label, {client: [values of each round, one list per run]});
    ``notes``: lines printed under the panels; ``log``: logarithmic value axes."""
    width = MARGIN_L + len(panels) * (PANEL_W + GAP + MARGIN_L) - GAP - MARGIN_L + 60
    height = MARGIN_T + PANEL_H + MARGIN_B + 18 * len(notes)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for i, line in enumerate(notes):
        out.append(
            f'<text x="{width / 2}" y="{height - 8 - 18 * (len(notes) - 1 - i)}" '
            f'text-anchor="middle" fill="#555">{escape(line)}</text>'
        )
    for index, (label, series) in enumerate(panels):
        left = MARGIN_L + index * (PANEL_W + GAP + MARGIN_L)
        out.extend(_panel(left, label, series, log))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 times the powers of ten from below ``low`` to above ``high``."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5)]
    below = max(t for t in ticks if t <= low)
    above = min(t for t in ticks if t >= high)
    return [t for t in ticks if below <= t <= above]


def _panel(left: float, label: str, series: dict[str, list[list[float]]], log: bool) -> list[str]:
    top, bottom = MARGIN_T, MARGIN_T + PANEL_H
    values = [v for runs in series.values() for run in runs for v in run]
    if log:
        ticks = _log_ticks(min(values), max(values))
        low, span = math.log10(ticks[0]), math.log10(ticks[-1]) - math.log10(ticks[0])

        def y(value: float) -> float:
            return bottom - (math.log10(value) - low) / span * PANEL_H

    else:
        ticks = _nice_ticks(max(values) * 1.05)
        scale = PANEL_H / ticks[-1]

        def y(value: float) -> float:
            return bottom - value * scale

    out = [
        f'<text x="{left + PANEL_W / 2}" y="{top - 10}" text-anchor="middle">'
        f"{escape(label)}</text>",
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{left + PANEL_W}" y2="{bottom}" stroke="#333"/>',
    ]
    for tick in ticks:
        ty = y(tick)
        out.append(
            f'<line x1="{left - 4}" y1="{ty:.1f}" x2="{left + PANEL_W}" y2="{ty:.1f}" '
            'stroke="#ddd"/>'
        )
        out.append(f'<text x="{left - 7}" y="{ty + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    column = PANEL_W / len(series)
    for i, (client, runs) in enumerate(series.items()):
        centre = left + column * (i + 0.5)
        colour = COLOURS.get(client, "#666")
        for r, run in enumerate(runs):
            # Each run in its own lane of the column, so runs can be told apart.
            lane = centre + (r - (len(runs) - 1) / 2) * min(14.0, column / (len(runs) + 2))
            out.extend(
                f'<circle cx="{lane:.1f}" cy="{y(value):.1f}" r="3" fill="{colour}" '
                'fill-opacity="0.45"/>'
                for value in run
            )
        median = statistics.median(v for run in runs for v in run)
        half = column * 0.32
        out.append(
            f'<line x1="{centre - half:.1f}" y1="{y(median):.1f}" x2="{centre + half:.1f}" '
            f'y2="{y(median):.1f}" stroke="{colour}" stroke-width="2.5"/>'
        )
        out.append(
            f'<text x="{centre + half + 3:.1f}" y="{y(median) - 4:.1f}" font-size="11" '
            f'fill="{colour}">{_fmt(median)}</text>'
        )
        out.append(
            f'<text x="{centre:.1f}" y="{bottom + 18}" text-anchor="middle">{escape(client)}</text>'
        )
    return out

"""Time-series charts as SVG drawn on the server: no chart library, nothing to download.

The hub already buckets the series (avg, min, max per bucket, queries.time_series), so a
chart is a few hundred points whatever the range: the average as a line, min to max as a
band behind it, broken where buckets are missing (a gateway offline is a gap, not a slope).
Pure functions: text in, text out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

__all__ = ["ChartFrame", "line_chart", "nice_ticks"]

_WIDTH, _HEIGHT = 800, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 10, 28


@dataclass(frozen=True, slots=True)
class ChartFrame:
    """What the chart spans and how its axes read."""

    from_ms: int
    to_ms: int
    bucket_ms: int
    #: Time labels along the x axis: ``(ms, text)``.
    x_ticks: Sequence[tuple[int, str]]
    value_label: Callable[[float], str]
    title: str


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values within [low, high] (steps of 1, 2 or 5 × 10^n)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10)),
               key=lambda step: abs((high - low) / step - (count - 1)))
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def line_chart(buckets: Sequence[dict[str, Any]], frame: ChartFrame) -> Markup:
    """An SVG of ``buckets`` (``bucket_ms``, ``avg``, ``min``, ``max``) over ``frame``."""
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    span = max(1, frame.to_ms - frame.from_ms)
    points = [b for b in buckets if b["avg"] is not None]
    low = min((float(b["min"]) for b in points), default=0.0)
    high = max((float(b["max"]) for b in points), default=1.0)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad

    def x(ms: float) -> float:
        return _LEFT + (ms - frame.from_ms) / span * plot_w

    def y(value: float) -> float:
        return _TOP + (high - value) / (high - low) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
             f'role="img" aria-label="{escape(frame.title)}"><title>{escape(frame.title)}'
             "</title>"]
    for tick in nice_ticks(low, high):
        parts.append(f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" stroke="#e3e8ee"/>'
                     f'<text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#5b6775">{escape(frame.value_label(tick))}</text>')
    for ms, label in frame.x_ticks:
        parts.append(f'<line x1="{x(ms):.1f}" x2="{x(ms):.1f}" y1="{_TOP}" '
                     f'y2="{_HEIGHT - _BOTTOM}" stroke="#eef1f4"/>'
                     f'<text x="{x(ms):.1f}" y="{_HEIGHT - 8}" text-anchor="middle" '
                     f'font-size="11" fill="#5b6775">{escape(label)}</text>')
    for run in _runs(points, frame.bucket_ms):
        centre = [(x(b["bucket_ms"] + frame.bucket_ms / 2), b) for b in run]
        band = [f"{cx:.1f},{y(float(b['max'])):.1f}" for cx, b in centre] + [
            f"{cx:.1f},{y(float(b['min'])):.1f}" for cx, b in reversed(centre)]
        line = " ".join(f"{cx:.1f},{y(float(b['avg'])):.1f}" for cx, b in centre)
        parts.append(f'<polygon points="{" ".join(band)}" fill="#0b5cad" '
                     'fill-opacity="0.15"/>')
        parts.append(f'<polyline points="{line}" fill="none" stroke="#0b5cad" '
                     'stroke-width="1.6"/>' if len(run) > 1 else
                     f'<circle cx="{centre[0][0]:.1f}" cy="{y(float(run[0]["avg"])):.1f}" '
                     'r="2.5" fill="#0b5cad"/>')
    parts.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" '
                 'fill="none" stroke="#c9d1da"/></svg>')
    return Markup("".join(parts))  # every text inside is escaped above


def _runs(points: Sequence[dict[str, Any]], bucket_ms: int) -> list[list[dict[str, Any]]]:
    """``points`` cut where a bucket is missing."""
    runs: list[list[dict[str, Any]]] = []
    for point in points:
        if runs and point["bucket_ms"] - runs[-1][-1]["bucket_ms"] <= bucket_ms:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs

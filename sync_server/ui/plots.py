"""Two small SVG drawings for the car-park and marina pages, drawn on the server.

A day's curve (a car park's occupancy since midnight) and horizontal bars (consumption
per berth, badge or month): horizontal, so the labels stay readable at 360 px. The SVG
scales to its box (``viewBox``); text is escaped by ``Markup.format``.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

__all__ = ["bars", "day_curve"]

_WIDTH = 600
_HEIGHT = 120
_BAR = 30


def day_curve(points: Sequence[tuple[int, float]], start_ms: int, end_ms: int,
              top: float, label: str) -> Markup:
    """``points`` (ms, value) as a line over [start_ms, end_ms), values from 0 to ``top``."""
    span = max(1, end_ms - start_ms)
    top = max(top, max((value for _, value in points), default=0.0), 1.0)
    coords = " ".join(
        f"{(ts - start_ms) * _WIDTH / span:.1f},{_HEIGHT - value * _HEIGHT / top:.1f}"
        for ts, value in points)
    hours = "".join(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{_HEIGHT}" '
                    'stroke="#d8dee6" vector-effect="non-scaling-stroke"/>'
                    for x in (_WIDTH * h / 24 for h in (6, 12, 18)))
    return Markup(
        '<svg viewBox="0 0 {w} {h}" role="img" aria-label="{label}" '
        'preserveAspectRatio="none">{grid}'
        '<polyline fill="none" stroke="#0b5cad" stroke-width="2" '
        'vector-effect="non-scaling-stroke" points="{coords}"/></svg>'
    ).format(w=_WIDTH, h=_HEIGHT, label=label, grid=Markup(hours), coords=coords)


def bars(rows: Sequence[tuple[str, float]], unit: str, label: str) -> Markup:
    """One horizontal bar per ``(name, value)``, scaled to the largest, value written."""
    largest = max((value for _, value in rows), default=0.0) or 1.0
    height = max(1, len(rows)) * _BAR + 4
    parts = []
    for index, (name, value) in enumerate(rows):
        y = 2 + index * _BAR
        width = value * (_WIDTH - 330) / largest
        parts.append(Markup(
            '<text x="0" y="{ty}" class="name">{name}</text>'
            '<rect x="200" y="{y}" width="{width:.1f}" height="{bar}" fill="#0b5cad"/>'
            '<text x="{vx:.1f}" y="{ty}">{value} {unit}</text>'
        ).format(ty=y + 21, name=name[:16], y=y + 4, width=width, bar=_BAR - 8,
                 vx=206 + width, value=f"{value:g}", unit=unit))
    return Markup(
        '<svg viewBox="0 0 {w} {h}" role="img" aria-label="{label}" font-size="20">'
        '{parts}</svg>').format(w=_WIDTH, h=height, label=label, parts=Markup("").join(parts))

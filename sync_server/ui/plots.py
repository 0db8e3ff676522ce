"""Horizontal bars drawn as SVG on the server: the marina's consumption per berth, badge or
month. Horizontal, so the names stay readable at 360 px; time series are charts.py's. The
SVG scales to its box (``viewBox``); text is escaped by ``Markup.format``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup

__all__ = ["bars"]

_WIDTH = 400
_BAR = 22


def bars(rows: Sequence[tuple[str, float]], value_text: Callable[[float], str],
         label: str) -> Markup:
    """One horizontal bar per ``(name, value)``, scaled to the largest, with its value as
    ``value_text`` writes it (the viewer's language)."""
    largest = max((value for _, value in rows), default=0.0) or 1.0
    height = max(1, len(rows)) * _BAR + 4
    parts = []
    for index, (name, value) in enumerate(rows):
        y = 2 + index * _BAR
        width = value * (_WIDTH - 210) / largest
        parts.append(Markup(
            '<text x="4" y="{ty}">{name}</text>'
            '<rect x="130" y="{y}" width="{width:.1f}" height="{bar}" fill="#0b5cad"/>'
            '<text x="{vx:.1f}" y="{ty}">{value}</text>'
        ).format(ty=y + 16, name=name[:16], y=y + 4, width=width, bar=_BAR - 8,
                 vx=136 + width, value=value_text(value)))
    return Markup(
        '<svg viewBox="0 0 {w} {h}" role="img" aria-label="{label}" font-size="14">'
        '{parts}</svg>').format(w=_WIDTH, h=height, label=label, parts=Markup("").join(parts))

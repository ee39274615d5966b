"""Small inline SVG bar charts for the run report: no script, no external asset, labels escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

__all__ = ["bar_chart_svg"]

_WIDTH = 560
_LABEL_W = 190
_VALUE_W = 80
_BAR_H = 18
_GAP = 6
_TOP = 28
_LABEL_MAX = 28


def _label(text: str) -> str:
    short = text if len(text) <= _LABEL_MAX else text[: _LABEL_MAX - 1] + "…"
    return escape(short, quote=True)


def bar_chart_svg(title: str, data: Mapping[str, int]) -> str:
    """A horizontal bar per item, in the given order, for inlining in an HTML page.

    No ``xmlns``: the SVG lives inside HTML, and the report must not name any URL.
    """
    rows = list(data.items())
    bar_room = _WIDTH - _LABEL_W - _VALUE_W
    top = max((v for _, v in rows), default=0)
    height = _TOP + max(len(rows), 1) * (_BAR_H + _GAP) + _GAP
    safe_title = escape(title, quote=True)
    parts = [
        f'<svg class="chart" role="img" aria-label="{safe_title}" width="{_WIDTH}" '
        f'height="{height}" viewBox="0 0 {_WIDTH} {height}">',
        f"<title>{safe_title}</title>",
        f'<text x="0" y="18" class="chart-title">{safe_title}</text>',
    ]
    if not rows:
        parts.append(f'<text x="0" y="{_TOP + _BAR_H - 4}" class="chart-empty">none</text>')
    for i, (name, value) in enumerate(rows):
        y = _TOP + i * (_BAR_H + _GAP)
        width = round(bar_room * max(value, 0) / top) if top > 0 else 0
        parts.append(
            f'<text x="{_LABEL_W - 8}" y="{y + _BAR_H - 4}" text-anchor="end">'
            f"<title>{escape(name, quote=True)}</title>{_label(name)}</text>"
            f'<rect x="{_LABEL_W}" y="{y}" width="{max(width, 1) if value else 0}" '
            f'height="{_BAR_H}" class="bar"></rect>'
            f'<text x="{_LABEL_W + width + 6}" y="{y + _BAR_H - 4}">{value:,}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)

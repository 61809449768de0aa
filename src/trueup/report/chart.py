"""Inline SVG bar charts for the HTML report: no JavaScript, no network, opens offline.

Two shapes cover what people ask of drift: `columns()` draws a distribution
(one column per bucket, e.g. drifted keys per order of magnitude of delta) and
`diverging_bars()` draws signed values around a zero line (e.g. the worst
keys' deltas, shortfalls to the left and surpluses to the right).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape

NEGATIVE = "#c0392b"
POSITIVE = "#2471a3"
INK = "#333"


def columns(bars: Sequence[tuple[str, int]], *, width: int = 640, height: int = 220, title: str = "") -> str:
    """Vertical columns, one per (label, count); labels starting with '-' are drawn as shortfalls."""
    if not bars:
        return ""
    top, bottom, left = 24, 48, 40
    plot_h = height - top - bottom
    peak = max(count for _, count in bars) or 1
    slot = (width - left - 10) / len(bars)
    parts = [_open(width, height, title)]
    for index, (label, count) in enumerate(bars):
        bar_h = plot_h * count / peak
        x = left + index * slot + slot * 0.1
        y = top + plot_h - bar_h
        colour = NEGATIVE if label.startswith("-") else POSITIVE
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{bar_h:.1f}" fill="{colour}">'
            f"<title>{escape(label)}: {count}</title></rect>"
        )
        parts.append(_text(x + slot * 0.4, y - 4, str(count), anchor="middle"))
        parts.append(_text(x + slot * 0.4, top + plot_h + 16, label, anchor="middle", size=10))
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="{INK}"/>')
    parts.append("</svg>")
    return "".join(parts)


def diverging_bars(bars: Sequence[tuple[str, Decimal]], *, width: int = 640, row: int = 22, title: str = "") -> str:
    """Horizontal bars around a zero line, one row per (label, signed value)."""
    if not bars:
        return ""
    label_w, top = 230, 24
    height = top + row * len(bars) + 10
    span = max(abs(value) for _, value in bars) or Decimal(1)
    negative, positive = any(v < 0 for _, v in bars), any(v > 0 for _, v in bars)
    room = width - label_w - 90  # plot width, leaving space for value labels
    half = room / 2 if negative and positive else room  # one-signed charts use the full width
    zero = label_w + 45 + (half if negative else 0)
    parts = [_open(width, height, title)]
    for index, (label, value) in enumerate(bars):
        y = top + index * row
        length = float(abs(value) / span) * half
        x = zero - length if value < 0 else zero
        colour = NEGATIVE if value < 0 else POSITIVE
        parts.append(_text(label_w, y + row * 0.65, _clip(label), anchor="end", size=10))
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max(length, 1):.1f}" height="{row - 6}" fill="{colour}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        value_x = x - 4 if value < 0 else x + length + 4
        parts.append(_text(value_x, y + row * 0.65, f"{value:+}", anchor="end" if value < 0 else "start", size=11))
    parts.append(f'<line x1="{zero}" y1="{top - 4}" x2="{zero}" y2="{height - 6}" stroke="{INK}"/>')
    parts.append("</svg>")
    return "".join(parts)


def timeline(
    points: Sequence[tuple[datetime, int, int]], *, width: int = 640, height: int = 200, title: str = ""
) -> str:
    """Drifted (red) and corrected (blue) keys per round over time, as two polylines."""
    if len(points) < 2:
        return ""
    top, bottom, left, right = 24, 36, 40, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    first, last = points[0][0], points[-1][0]
    span = (last - first).total_seconds() or 1
    peak = max(max(d, c) for _, d, c in points) or 1

    def xy(at: datetime, value: int) -> str:
        x = left + plot_w * (at - first).total_seconds() / span
        return f"{x:.1f},{top + plot_h - plot_h * value / peak:.1f}"

    parts = [_open(width, height, title)]
    for index, colour, dash in ((2, POSITIVE, "5 3"), (1, NEGATIVE, "none")):  # corrected first, drifted over it
        line = " ".join(xy(p[0], p[index]) for p in points)
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
        )
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{INK}"/>')
    parts.append(_text(left - 4, top + 8, str(peak), anchor="end", size=10))
    parts.append(_text(left, height - 12, f"{first:%Y-%m-%d %H:%M}", anchor="start", size=10))
    parts.append(_text(width - right, height - 12, f"{last:%Y-%m-%d %H:%M}", anchor="end", size=10))
    parts.append(
        _text(width / 2, height - 12, "drifted (red) and corrected (blue) per round", anchor="middle", size=10)
    )
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    head = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
    head += ' role="img" font-family="system-ui, sans-serif">'
    if title:
        head += f"<title>{escape(title)}</title>" + _text(0, 14, title, anchor="start", size=13, weight="600")
    return head


def _text(x: float, y: float, text: str, *, anchor: str, size: int = 12, weight: str = "normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'font-weight="{weight}" fill="{INK}">{escape(text)}</text>'
    )


def _clip(label: str, limit: int = 34) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def sparkline(values: Sequence[int], *, width: int = 120, height: int = 24, title: str = "") -> str:
    """A small line of `values` (e.g. drifted keys per round, oldest first), for a table cell."""
    if len(values) < 2:
        return ""
    peak = max(values) or 1
    step = (width - 2) / (len(values) - 1)
    line = " ".join(f"{1 + i * step:.1f},{height - 2 - (height - 4) * v / peak:.1f}" for i, v in enumerate(values))
    label = f"<title>{escape(title)}</title>" if title else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img">{label}<polyline points="{line}" fill="none" stroke="{NEGATIVE}" stroke-width="1.5"/></svg>'
    )

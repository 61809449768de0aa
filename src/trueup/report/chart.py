"""Inline SVG bar charts for the HTML report: no JavaScript, no network, opens offline.

Two shapes cover what people ask of drift: `columns()` draws a distribution
(one column per bucket, e.g. drifted keys per order of magnitude of delta) and
`diverging_bars()` draws signed values around a zero line (e.g. the worst
keys' deltas, shortfalls to the left and surpluses to the right).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from trueup.report.format import number

NEGATIVE = "#c0392b"
POSITIVE = "#2471a3"
INK = "#333"
GRID = "#e5e5e5"


def columns(bars: Sequence[tuple[str, int]], *, width: int = 640, height: int = 220, title: str = "") -> str:
    """Vertical columns, one per (label, count); labels starting with '-' are drawn as shortfalls."""
    if not bars:
        return ""
    top, bottom, left = 36, 48, 40
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
            f"<title>{escape(label)}: {number(value, signed=True)}</title></rect>"
        )
        value_x = x - 4 if value < 0 else x + length + 4
        shown = number(value, signed=True)
        parts.append(_text(value_x, y + row * 0.65, shown, anchor="end" if value < 0 else "start", size=11))
    parts.append(f'<line x1="{zero}" y1="{top - 4}" x2="{zero}" y2="{height - 6}" stroke="{INK}"/>')
    parts.append("</svg>")
    return "".join(parts)


def timeline(
    points: Sequence[tuple[datetime, int, int]], *, width: int = 640, height: int = 230, title: str = ""
) -> str:
    """Drifted keys found per round (red dots joined by a line) and keys corrected (blue columns).

    `points` are (time, drifted, corrected) of comparable rounds, oldest first. The line is broken
    where rounds are missing (see `runs()`), so a gap never reads as a ramp; columns sit behind
    the line, so equal counts hide neither.
    """
    if not points:
        return ""
    top, bottom, left, right = 30, 40, 48, 12
    plot_w, plot_h = width - left - right, height - top - bottom
    first, last = points[0][0], points[-1][0]
    span = (last - first).total_seconds()
    marks = ticks(max(max(d, c) for _, d, c in points))
    peak = marks[-1]

    def x(at: datetime) -> float:
        return left + (plot_w * (at - first).total_seconds() / span if span else plot_w / 2)

    def y(value: int) -> float:
        return top + plot_h - plot_h * value / peak

    parts = [_open(width, height, title)]
    for mark in marks:
        parts.append(f'<line x1="{left}" y1="{y(mark):.1f}" x2="{width - right}" y2="{y(mark):.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, y(mark) + 4, number(mark), anchor="end", size=10))
    bar = max(2.0, min(12.0, plot_w / len(points) * 0.5))
    for at, _, corrected in points:
        if corrected:
            parts.append(
                f'<rect x="{x(at) - bar / 2:.1f}" y="{y(corrected):.1f}" width="{bar:.1f}" '
                f'height="{y(0) - y(corrected):.1f}" fill="{POSITIVE}" fill-opacity="0.55">'
                f"<title>{at:%Y-%m-%d %H:%M}: {number(corrected)} corrected</title></rect>"
            )
    for run in runs([at for at, _, _ in points]):
        line = " ".join(f"{x(points[i][0]):.1f},{y(points[i][1]):.1f}" for i in run)
        if len(run) > 1:
            parts.append(f'<polyline points="{line}" fill="none" stroke="{NEGATIVE}" stroke-width="2"/>')
    for at, drifted, _ in points:
        parts.append(
            f'<circle cx="{x(at):.1f}" cy="{y(drifted):.1f}" r="3" fill="{NEGATIVE}">'
            f"<title>{at:%Y-%m-%d %H:%M}: {number(drifted)} drifted</title></circle>"
        )
    parts.append(f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="{INK}"/>')
    parts.append(_text(left, height - 22, f"{first:%Y-%m-%d %H:%M}", anchor="start", size=10))
    if span:
        parts.append(_text(width - right, height - 22, f"{last:%Y-%m-%d %H:%M} UTC", anchor="end", size=10))
    parts += _legend(width - right, 14, [("line", NEGATIVE, "drifted keys found"), ("box", POSITIVE, "keys corrected")])
    parts.append("</svg>")
    return "".join(parts)


def ticks(peak: int) -> list[int]:
    """Axis marks from 0 in steps of 1, 2 or 5 × 10ⁿ, at most five steps, the last at or above `peak`."""
    step, factors = 1, itertools.cycle((2, 2.5, 2))  # 1, 2, 5, 10, 20, 50, ...
    while step * 5 < peak:
        step = int(step * next(factors))
    top = max(step, -(-peak // step) * step)
    return list(range(0, top + 1, step))


def runs(times: Sequence[datetime], slack: float = 1.5) -> list[list[int]]:
    """Indexes of `times` split where rounds are missing: a gap longer than `slack` × the median gap.

    [10:00, 10:05, 10:10, 11:00, 11:05] -> [[0, 1, 2], [3, 4]] (the median gap is 5 minutes).
    """
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    usual = sorted(gaps)[len(gaps) // 2] if gaps else 0
    found: list[list[int]] = [[0]] if times else []
    for index, gap in enumerate(gaps, start=1):
        if usual > 0 and gap > slack * usual:
            found.append([])
        found[-1].append(index)
    return found


def _legend(right: float, y: float, entries: Sequence[tuple[str, str, str]]) -> list[str]:
    """Legend entries laid out leftwards from `right`: (shape "line" or "box", colour, label)."""
    parts, x = [], right
    for shape, colour, label in reversed(entries):
        x -= 7 * len(label)
        parts.append(_text(x, y + 4, label, anchor="start", size=10))
        if shape == "line":
            swatch = f'<line x1="{x - 20:.1f}" y1="{y:.1f}" x2="{x - 6:.1f}" y2="{y:.1f}" stroke-width="2"'
        else:
            swatch = f'<rect x="{x - 16:.1f}" y="{y - 5:.1f}" width="10" height="10" fill-opacity="0.55"'
        parts.append(f'{swatch} {"stroke" if shape == "line" else "fill"}="{colour}"/>')
        x -= 34
    return parts


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

"""Small inline SVG charts built from numbers; every label is redacted and escaped here.

The functions return :class:`Trusted` markup, so the report template shows them as markup.
Nothing else in the report is trusted that way: the SVG is made only from formatted numbers and
escaped text, and has no scripts, links or external references.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from markupsafe import Markup, escape

from ..redaction import redact

__all__ = ["Trusted", "balance_bar", "histogram", "line_chart"]


class Trusted(Markup):
    """Markup this package generated itself (charts, checked image data URIs, its script).

    The report shows only this subclass unescaped; a plain ``Markup`` that arrives with the data
    is redacted and escaped like any other string.
    """

    __slots__ = ()


def _text(value: object) -> str:
    """A label as escaped, redacted text."""
    return str(escape(redact(str(value))))


def _n(x: float) -> str:
    """A coordinate."""
    return f"{x:.1f}"


def _v(x: float) -> str:
    """A value shown on an axis or in a tooltip."""
    if not math.isfinite(x):
        return "-"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _head(kind: str, title: str, width: int, height: int, left: int) -> list[str]:
    """The opening of a plotted chart: the ``<svg>`` tag with its accessible title and the
    visible title above the plot."""
    return [
        f'<svg class="chart {kind}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_text(title)}">'
        f"<title>{_text(title)}</title>",
        f'<text x="{left}" y="14" class="title">{_text(title)}</text>',
    ]


def _axes(
    area: tuple[int, int, int, int],
    height: int,
    *,
    y_ticks: tuple[str, str],
    x_ticks: Sequence[tuple[str, str, str]],
    x_label: str,
    y_label: str,
) -> list[str]:
    """The close of a plotted chart of ``height`` whose plot ``area`` is ``(left, top, plot
    width, plot height)``: both axes, the ``y_ticks`` (bottom, top) values beside the y axis, the
    ``x_ticks`` ``(x, anchor, text)`` under the x axis, the axis labels and ``</svg>``."""
    left, top, plot_w, plot_h = area
    base = top + plot_h
    return [
        f'<line x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}" class="axis"/>',
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{base}" class="axis"/>',
        f'<text x="{left - 4}" y="{base}" text-anchor="end">{y_ticks[0]}</text>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{y_ticks[1]}</text>',
        *(
            f'<text x="{x}" y="{base + 14}" text-anchor="{anchor}">{text}</text>'
            for x, anchor, text in x_ticks
        ),
        f'<text x="{_n(left + plot_w / 2)}" y="{height - 4}" text-anchor="middle" '
        f'class="label">{_text(x_label)}</text>',
        f'<text x="12" y="{_n(top + plot_h / 2)}" text-anchor="middle" class="label" '
        f'transform="rotate(-90 12 {_n(top + plot_h / 2)})">{_text(y_label)}</text>',
        "</svg>",
    ]


def balance_bar(
    share: float | None, *, low: float = 0.6, high: float = 0.7, width: int = 360
) -> Markup:
    """A horizontal 0-100% bar with the guidance band [low, high] marked and ``share`` drawn."""
    pad, bar_h, h = 10, 16, 48
    inner = width - 2 * pad

    def x(frac: float) -> float:
        return pad + inner * min(max(frac, 0.0), 1.0)

    title = "no labeled episodes" if share is None else f"interventions {share:.1%}"
    parts = [
        f'<svg class="chart balance" width="{width}" height="{h}" viewBox="0 0 {width} {h}" '
        f'role="img" aria-label="{_text(title)}"><title>{_text(title)}</title>',
        f'<rect x="{pad}" y="6" width="{inner}" height="{bar_h}" class="track"/>',
        f'<rect x="{_n(x(low))}" y="2" width="{_n(x(high) - x(low))}" height="{bar_h + 8}" '
        f'class="band"><title>guidance band {low:.0%}-{high:.0%}</title></rect>',
    ]
    if share is not None and math.isfinite(share):
        parts.append(
            f'<rect x="{pad}" y="10" width="{_n(x(share) - pad)}" height="{bar_h - 8}" '
            f'class="value"/>'
            f'<line x1="{_n(x(share))}" x2="{_n(x(share))}" y1="4" y2="{bar_h + 8}" class="mark"/>'
        )
    for frac in (0.0, low, high, 1.0):
        anchor = "start" if frac == 0 else "end" if frac == 1 else "middle"
        parts.append(
            f'<text x="{_n(x(frac))}" y="{h - 4}" text-anchor="{anchor}">{frac:.0%}</text>'
        )
    parts.append("</svg>")
    return Trusted("".join(parts))


def histogram(
    counts: Sequence[int],
    lo: float,
    hi: float,
    *,
    title: str,
    x_label: str = "reward",
    y_label: str = "episodes",
    width: int = 340,
    height: int = 190,
) -> Markup:
    """A bar chart of ``counts`` over equal bins spanning [lo, hi], with labelled axes."""
    left, right, top, bottom = 44, 12, 22, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(counts, default=0) or 1
    bins = max(len(counts), 1)
    bw = plot_w / bins
    step = (hi - lo) / bins
    parts = _head("hist", title, width, height, left)
    for i, count in enumerate(counts):
        bh = plot_h * count / peak
        a, b = lo + i * step, lo + (i + 1) * step
        parts.append(
            f'<rect x="{_n(left + i * bw + 1)}" y="{_n(top + plot_h - bh)}" '
            f'width="{_n(max(bw - 2, 1))}" height="{_n(bh)}" class="bar">'
            f"<title>[{_v(a)}, {_v(b)}{']' if i == bins - 1 else ')'}: {count}</title></rect>"
        )
    parts += _axes(
        (left, top, plot_w, plot_h),
        height,
        y_ticks=("0", str(peak)),
        x_ticks=[
            (str(left), "start", _v(lo)),
            (_n(left + plot_w / 2), "middle", _v((lo + hi) / 2)),
            (str(left + plot_w), "end", _v(hi)),
        ],
        x_label=x_label,
        y_label=y_label,
    )
    return Trusted("".join(parts))


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    y_label: str,
    x_label: str = "session",
    flagged: Collection[int] = (),
    width: int = 420,
    height: int = 200,
) -> Markup:
    """A line over ``points`` (label, value) in order; indexes in ``flagged`` are marked."""
    left, right, top, bottom = 52, 14, 22, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v in points if math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    n = len(points)

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    drawn = [(i, label, v) for i, (label, v) in enumerate(points) if math.isfinite(v)]
    parts = _head("line", title, width, height, left)
    if len(drawn) > 1:
        path = " ".join(f"{_n(px(i))},{_n(py(v))}" for i, _, v in drawn)
        parts.append(f'<polyline points="{path}" class="trend"/>')
    for i, label, v in drawn:
        cls = "drop" if i in flagged else "pt"
        r = 5 if i in flagged else 3
        parts.append(
            f'<circle cx="{_n(px(i))}" cy="{_n(py(v))}" r="{r}" class="{cls}">'
            f"<title>{_text(label)}: {_v(v)}{' (drop)' if i in flagged else ''}</title></circle>"
        )
    parts += _axes(
        (left, top, plot_w, plot_h),
        height,
        y_ticks=(_v(lo), _v(hi)),
        x_ticks=[(str(left), "start", "1"), (str(left + plot_w), "end", str(max(n, 1)))],
        x_label=x_label,
        y_label=y_label,
    )
    return Trusted("".join(parts))

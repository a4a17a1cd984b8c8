"""Charts drawn on the server as SVG: bars for rates and amounts, columns per day.

No script, no fonts or libraries fetched from elsewhere: the page's stylesheet
colours the shapes through their classes. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 680
LABEL_W = 200
ROW_H = 24
BAR_H = 15


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    warn: bool = False


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def money(cents: float) -> str:
    return f"{cents / 100:,.2f}"


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    fmt: Callable[[float], str] = str,
    *,
    marker: tuple[str, float] | None = None,
) -> Markup:
    """Horizontal bars, one per row, longest scale at the largest value (or marker)."""
    if not any(b.value for b in bars) and not (marker and marker[1]):
        return Markup("")  # all nought: the table says it better
    area = WIDTH - LABEL_W - 80
    top = max([b.value for b in bars] + [marker[1] if marker else 0.0]) or 1.0
    height = ROW_H * len(bars) + (22 if marker else 8)
    parts = [_open(title, height)]
    for i, bar in enumerate(bars):
        y = 4 + i * ROW_H
        w = max(1.0, area * max(bar.value, 0.0) / top)
        css = "bar warn" if bar.warn else "bar"
        parts.append(
            f'<text class="label" x="{LABEL_W - 8}" y="{y + 12}" text-anchor="end">'
            f"{escape(_short(bar.label))}</text>"
            f'<rect class="{css}" x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}">'
            f"<title>{escape(bar.label)}: {escape(fmt(bar.value))}</title></rect>"
            f'<text class="value" x="{LABEL_W + w + 6:.1f}" y="{y + 12}">'
            f"{escape(fmt(bar.value))}</text>"
        )
    if marker is not None:
        x = LABEL_W + area * marker[1] / top
        bottom = ROW_H * len(bars) + 4
        parts.append(
            f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{bottom}"/>'
            f'<text class="marker-label" x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">'
            f"{escape(marker[0])} {escape(fmt(marker[1]))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(
    title: str, days: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]
) -> Markup:
    """Columns per day, one colour per series, with a legend."""
    if not days:
        return Markup("")
    height, base, left = 230, 190, 48
    area = WIDTH - left - 10
    top = max((v for _, values in series for v in values), default=0) or 1
    slot = area / len(days)
    column = max(1.0, (slot - 2) / len(series))
    parts = [_open(title, height)]
    parts.append(
        f'<line class="axis" x1="{left}" x2="{WIDTH - 10}" y1="{base}" y2="{base}"/>'
        f'<text class="value" x="{left - 6}" y="18" text-anchor="end">{escape(_number(top))}</text>'
        f'<text class="value" x="{left - 6}" y="{base}" text-anchor="end">0</text>'
    )
    every = max(1, len(days) // 8)
    for d, day in enumerate(days):
        x0 = left + d * slot
        for s, (name, values) in enumerate(series):
            h = (base - 14) * values[d] / top
            parts.append(
                f'<rect class="column series-{s}" x="{x0 + s * column:.1f}" y="{base - h:.1f}"'
                f' width="{column:.1f}" height="{h:.1f}">'
                f"<title>{escape(day)} {escape(name)}: {escape(_number(values[d]))}</title></rect>"
            )
        if d % every == 0:
            parts.append(
                f'<text class="label" x="{x0 + slot / 2:.1f}" y="{base + 16}"'
                f' text-anchor="middle">{escape(day[5:])}</text>'
            )
    for s, (name, _) in enumerate(series):
        x = left + s * 110
        parts.append(
            f'<rect class="column series-{s}" x="{x}" y="{height - 14}" width="12" height="12"/>'
            f'<text class="label" x="{x + 16}" y="{height - 4}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(title: str, height: int) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img"'
        f' aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    )


def _short(label: str, most: int = 28) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"

"""The dashboard's charts as inline SVG drawn here (no script library, nothing fetched from
elsewhere; it works offline): a line a series over time, bars for the backlog. Every text is
escaped through `templates.html`; colours are SVG attributes, not inline styles (the CSP
allows no inline style)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from engine.console.templates import Safe, html, join
from engine.readable import local
from engine.store.console_charts import Chart, Series

W, H = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 28, 30
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_NO_STEP = timedelta(0)
COLOURS = ("#005eb8", "#d5281b", "#007f3b", "#ffb81c", "#330072", "#41b6e6", "#768692")


def _scale(series: Sequence[Series]) -> float:
    top = max((v for s in series for v in s.values if v is not None), default=0.0)
    return top * 1.1 or 1.0


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def line_chart(chart: Chart, element_id: str) -> Safe:
    """One line a series; gaps where a bucket has no value."""
    top = _scale(chart.series)
    count = max((len(s.values) for s in chart.series), default=0)
    width, height = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (width * i / max(1, count - 1))

    def y(v: float) -> float:
        return TOP + height - height * v / top

    lines, legend = [], []
    for n, s in enumerate(chart.series):
        colour = COLOURS[n % len(COLOURS)]
        xy = [(x(i), y(v)) for i, v in enumerate(s.values) if v is not None]
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in xy)
        lines.append(
            html(
                '<polyline fill="none" stroke="$c" stroke-width="2" points="$p"/>',
                c=colour,
                p=points,
            )
        )
        if len(xy) <= 1 or s.values.count(None) > 0:  # a lone point draws no line: mark each
            lines += [
                html(
                    '<circle cx="$x" cy="$y" r="3" fill="$c"/>',
                    x=f"{px:.1f}",
                    y=f"{py:.1f}",
                    c=colour,
                )
                for px, py in xy
            ]
        legend.append(_legend(n, s.name, colour))
    end = chart.start + chart.step * count
    return _frame(
        chart,
        element_id,
        top,
        join(lines),
        join(legend),
        local(chart.start, seconds=False),
        local(end, seconds=False),
    )


def bar_chart(title: str, bars: Sequence[tuple[str, float]], element_id: str) -> Safe:
    """One bar a name (the backlog per destination)."""
    top = max((v for _, v in bars), default=0.0) * 1.1 or 1.0
    width, height = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = width / max(1, len(bars))
    parts = []
    for n, (name, value) in enumerate(bars):
        h = height * value / top
        parts.append(
            html(
                '<rect x="$x" y="$y" width="$w" height="$h" fill="$c"><title>$n: $v</title></rect>'
                '<text x="$tx" y="$ty" font-size="11" text-anchor="middle">$n ($v)</text>',
                x=f"{LEFT + n * slot + slot * 0.15:.1f}",
                y=f"{TOP + height - h:.1f}",
                w=f"{slot * 0.7:.1f}",
                h=f"{h:.1f}",
                c=COLOURS[n % len(COLOURS)],
                n=name,
                v=f"{value:g}",
                tx=f"{LEFT + n * slot + slot / 2:.1f}",
                ty=H - BOTTOM + 14,
            )
        )
    chart = Chart(title, "now", _NO_TIME, _NO_STEP, ())
    return _frame(chart, element_id, top, join(parts), Safe(""), "", "")


def _legend(n: int, name: str, colour: str) -> Safe:
    y = TOP + 14 * n + 6
    return html(
        '<rect x="$x" y="$y" width="10" height="10" fill="$c"/>'
        '<text x="$tx" y="$ty" font-size="11">$n</text>',
        x=W - RIGHT + 10,
        y=y,
        c=colour,
        tx=W - RIGHT + 24,
        ty=y + 9,
        n=name,
    )


def _frame(
    chart: Chart, element_id: str, top: float, body: Safe, legend: Safe, start: str, end: str
) -> Safe:
    base = H - BOTTOM
    return html(
        '<figure class="chart"><svg id="$id" role="img" aria-label="$t" viewBox="0 0 $w $h" '
        'width="$w" height="$h" xmlns="http://www.w3.org/2000/svg">'
        '<text x="$l" y="16" font-size="13" font-weight="bold">$t ($u)</text>'
        '<line x1="$l" y1="$top" x2="$l" y2="$base" stroke="#999"/>'
        '<line x1="$l" y1="$base" x2="$r" y2="$base" stroke="#999"/>'
        '<text x="$lt" y="$ty" font-size="10" text-anchor="end">$max</text>'
        '<text x="$lt" y="$base" font-size="10" text-anchor="end">0</text>'
        '<text x="$l" y="$xy" font-size="10">$start</text>'
        '<text x="$r" y="$xy" font-size="10" text-anchor="end">$end</text>'
        "$body$legend</svg></figure>",
        id=element_id,
        t=chart.title,
        w=W,
        h=H,
        l=LEFT,
        top=TOP,
        base=base,
        r=W - RIGHT,
        lt=LEFT - 4,
        ty=TOP + 4,
        max=_number(top),
        u=chart.unit,
        xy=H - 4,
        start=start,
        end=end,
        body=body,
        legend=legend,
    )

"""The dashboard: each source's messages and each destination's backlog and error rate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlencode

from engine.console.templates import Safe, html, join, table
from engine.console.views.charts import bar_chart, line_chart
from engine.readable import duration, local
from engine.store.console_charts import Chart
from engine.store.console_models import DeliveryState, Figures
from engine.store.statuses import MessageStatus

_DESTINATION_COLUMNS = (
    "destination",
    "pending",
    "oldest pending",
    "held",
    "dead",
    "delivered",
    "last success",
    "error rate (15 min)",
)


def _age(now: datetime, then: datetime | None) -> str:
    return "-" if then is None else duration(now - then)


def dashboard_page(f: Figures, charts: Safe | None = None) -> Safe:
    sources = table(
        ("source", "accepted", "rejected", "duplicate", "last received"),
        [
            (
                name,
                s.messages.get(MessageStatus.ACCEPTED, 0),
                s.messages.get(MessageStatus.REJECTED, 0),
                s.messages.get(MessageStatus.DUPLICATE, 0),
                local(s.last_received) or "-",
            )
            for name, s in sorted(f.sources.items())
        ],
        "sources",
    )
    dests = table(
        _DESTINATION_COLUMNS,
        [
            (
                name,
                d.deliveries.get(DeliveryState.PENDING, 0),
                _age(f.at, d.oldest_pending),
                d.deliveries.get(DeliveryState.HELD, 0),
                d.deliveries.get(DeliveryState.DEAD, 0),
                d.deliveries.get(DeliveryState.DELIVERED, 0),
                local(d.last_success) or "-",
                "-" if d.error_rate is None else f"{d.error_rate:.0%}",
            )
            for name, d in sorted(f.destinations.items())
        ],
        "destinations",
    )
    return html("$c<h2>Sources</h2>$s<h2>Destinations</h2>$d", c=charts or "", s=sources, d=dests)


SCRIPT = """(function () {
  "use strict";
  var box = document.getElementById("charts");
  if (!box) { return; }
  var every = Math.max(5, Number(box.getAttribute("data-every")) || 30) * 1000;
  function refresh() {
    fetch(box.getAttribute("data-src"), {credentials: "same-origin",
                                         headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (text) {
        if (text !== null) {
          box.innerHTML = text;
          box.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* the next refresh tries again */ });
  }
  setInterval(refresh, every);
})();
"""
"""The dashboard's one script (served from the console, allowed by the CSP's script-src
'self'): it refetches the charts fragment every `data-every` seconds, without a full reload."""


def charts_fragment(
    rates: Chart, counts: Chart, latency: Chart, backlog: Sequence[tuple[str, float]]
) -> Safe:
    return join(
        [
            line_chart(rates, "chart-rates"),
            line_chart(counts, "chart-deliveries"),
            line_chart(latency, "chart-latency"),
            bar_chart("Backlog per destination, pending and held", backlog, "chart-backlog"),
        ]
    )


def charts_box(span: str, every: int, fragment: Safe) -> Safe:
    """The charts, the span links and the element the script refreshes."""
    src = "/dashboard/charts?" + urlencode({"span": span})
    links = join(
        html(
            '<a href="/dashboard?span=$s"$c>last $s</a> ',
            s=s,
            c=Safe(' class="on"') if s == span else Safe(""),
        )
        for s in SPANS
    )
    return html(
        '<h2>Charts</h2><p class="spans">Messages over the $links(refreshed every $e s; times '
        'are UK local time)</p><div id="charts" data-src="$src" data-every="$e">$f</div>'
        '<script src="/static/console.js" defer></script>',
        links=links,
        e=every,
        src=src,
        f=fragment,
    )


def backlog_bars(f: Figures) -> list[tuple[str, float]]:
    return [
        (
            name,
            float(
                d.deliveries.get(DeliveryState.PENDING, 0) + d.deliveries.get(DeliveryState.HELD, 0)
            ),
        )
        for name, d in sorted(f.destinations.items())
    ]


SPANS = ("1h", "24h")

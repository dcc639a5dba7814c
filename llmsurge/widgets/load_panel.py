"""The load panel: target load, in flight, done, failed, current tok/s and req/s, and client health."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.snapshot import Snapshot
from llmsurge.render.format import ms, num
from llmsurge.widgets.roles import RoleStyles

LABEL_WIDTH = 12  # the longest label ("output tok/s"): labels are never squeezed by long values


class LoadPanel(RoleStyles, Static, can_focus=True):
    """What the client is doing now."""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``."""
        bad, warn, strong, muted = self.role("bad"), self.role("warn"), self.role("strong"), self.role("muted")
        t = Table.grid(padding=(0, 1), expand=True)
        t.add_column(style=muted, no_wrap=True, min_width=LABEL_WIDTH, max_width=LABEL_WIDTH)
        t.add_column(justify="right", no_wrap=True, ratio=1)
        t.add_row("target", Text(snap.load_label or "—", style=strong))
        t.add_row("in flight", f"{snap.inflight:,}")
        t.add_row("done", f"{snap.completed:,}")
        t.add_row("failed", Text(f"{snap.failed:,}", style=bad if snap.failed else ""))
        if snap.cancelled:
            t.add_row("cancelled", f"{snap.cancelled:,}")
        st = snap.segment_figures  # TTFT at a glance, whatever pane is shown beside (the compact screen's first sight)
        if snap.inputs_per_request:  # embeddings, rerank: inputs, and the latency of whole answers
            t.add_row("inputs/s", Text(num(snap.request_s * snap.inputs_per_request, 0), style=strong))
        else:
            t.add_row("output tok/s", Text(num(snap.output_tok_s, 0), style=strong))
        t.add_row("requests/s", num(snap.request_s, 2))
        if st["ttft"].n or not st["e2el"].n:
            ttft = f"{ms(st['ttft'].at(50.0))}/{ms(st['ttft'].at(99.0))}" if st["ttft"].n else "—"
            t.add_row("TTFT p50/p99", Text(ttft, style=strong))
        else:  # no first token to time (a whole answer): its latency
            t.add_row("lat. p50/p99", Text(f"{ms(st['e2el'].at(50.0))}/{ms(st['e2el'].at(99.0))}", style=strong))
        if st.lag_p99_ms is not None:  # open loop: how late requests left against their schedule
            t.add_row(
                "send lag",
                Text(f"p99 {ms(st.lag_p99_ms)} ms, {st.late_share:.0%} late", style="" if st.schedule_kept else warn),
            )
        if snap.roofline[1]:
            t.add_row("of ceiling", Text(snap.roofline[1]))  # decode per stream against the roofline
        self.tooltip = snap.roofline[0] or None
        share = st.good_share if snap.slo else None
        if share is not None:  # goodput of this segment against the SLO
            style = self.role("good") if share >= 0.95 else bad
            t.add_row("good", Text(f"{share:.0%} {num(st.request_goodput, 2)}/s", style=style))
        if snap.errors:
            top = sorted(snap.errors.items(), key=lambda kv: -kv[1])[:2]
            t.add_row("errors", Text(" ".join(f"{k}:{v}" for k, v in top), style=bad))
        c = snap.client
        if c.workers:
            health = warn if c.saturated else ""
            t.add_row("client cpu", Text(f"{c.max_cpu:.0%} ({c.workers}w)", style=health))
            t.add_row("loop lag", Text(f"{c.max_loop_lag_ms:,.0f} ms", style=health))
        body: Table | Group = t
        if c.saturated:  # the whole width, wrapped: the reason names the remedy
            body = Group(t, Text(f"{str(c.cause).upper()}: {c.reason}", style=warn))
        self.update(body, layout=False)  # the pane's size is set by CSS: skip a screen reflow

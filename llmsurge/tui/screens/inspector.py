"""The request inspector: one request's timings, its chunk timeline, what came back, and how to send it again."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static
from textual_plot import HiResMode

from llmsurge.metrics.records import RequestRecord
from llmsurge.redaction import shown
from llmsurge.render.format import MISSING, ms
from llmsurge.widgets.pane_plot import PanePlot


def _ms(seconds: float | None) -> str:
    return MISSING if seconds is None else ms(seconds * 1000.0)


def details(rec: RequestRecord) -> Table:
    """Status, timings, tokens and the error of one request, as a two-column grid (server text as text)."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    status = rec.status.value + (f" ({rec.error_kind})" if rec.error_kind and rec.error_kind != "cancelled" else "")
    t.add_row("status", Text(status))
    t.add_row("segment", str(rec.segment) + (" (warm-up)" if rec.warmup else ""))
    t.add_row("HTTP", str(rec.http_status or MISSING))
    t.add_row("finish reason", Text(shown(rec.finish_reason or MISSING)))
    t.add_row("TTFT / TTFC", f"{_ms(rec.ttft)} / {_ms(rec.ttfc)} ms")
    share = rec.server.client_share_ms(rec.ttft) if rec.server is not None else None
    if rec.server is not None and share is not None:  # where this TTFT went, by the server's own clock
        queue = f"server queue {rec.server.queue_ms:,.1f} ms | " if rec.server.queue_ms is not None else ""
        unsaid = "" if rec.server.queue_ms is not None else " and queue"
        t.add_row(
            "where TTFT went",
            f"{queue}server prefill {rec.server.prompt_ms:,.1f} ms | the rest {share:,.1f} ms: network, the"
            f" server's front end{unsaid}, and our read ({rec.server.source})",
        )
    if rec.ttfr is not None:
        t.add_row("reasoning", f"first token {_ms(rec.ttfr)} ms, {rec.reasoning_chunks:,} chunks")
    if rec.turn:
        t.add_row("turn", f"{rec.turn} of its conversation")
    t.add_row("TPOT / E2EL", f"{_ms(rec.tpot)} / {_ms(rec.e2el)} ms")
    tokens = f"{rec.output_tokens:,}" + (" (counted by us: no usable usage)" if rec.tokens_estimated else "")
    t.add_row("output tokens", f"{tokens} of max {rec.max_tokens or MISSING}")
    cached = MISSING if rec.cached_tokens is None else f"{rec.cached_tokens:,} from the server's cache"
    t.add_row("prompt tokens", f"{rec.prompt_tokens:,} ({cached})")
    t.add_row(
        "chunks", f"{len(rec.itl) + 1 if rec.ttft is not None else 0:,}" + (", re-sent once" if rec.resent else "")
    )
    t.add_row("phases", phases(rec))
    if rec.client_wait is not None:
        t.add_row("client wait", f"{_ms(rec.client_wait)} ms after its scheduled time")
    if rec.usage_rejected:
        t.add_row("usage", Text(f"rejected: {shown(rec.usage_rejected, limit=None)}"))
    if rec.error:
        t.add_row("error", Text(shown(rec.error, newlines=True, limit=None)))
    if rec.degenerate:
        t.add_row("degenerate", Text(shown(rec.degenerate, limit=None)))
    if rec.quality_ok is not None:
        verdict = "right" if rec.quality_ok else f"wrong: {rec.quality_why}"
        t.add_row("quality", Text(shown(f"{rec.quality_item}: {verdict}", limit=None)))
    return t


def phases(rec: RequestRecord) -> str:
    """The request's phases before its first token: its connection (pooled, or opened: TCP and TLS), then the
    time to the answer's headers, then TTFT."""
    if rec.reused is None:
        return MISSING
    conn = "pooled connection" if rec.reused else f"connect {_ms(rec.connect)} ms"
    if rec.tls is not None:
        conn += f", TLS {_ms(rec.tls)} ms"
    return f"{conn} | headers {_ms(rec.headers)} ms | first token {_ms(rec.ttft)} ms"


class InspectorScreen(ModalScreen[None]):
    """One request, in full. ``c`` copies a curl command that sends it again (the key as ``$VAR``)."""

    CSS_PATH = "inspector.tcss"
    BINDINGS = [
        Binding("escape", "dismiss", "close", id="inspector-close"),
        Binding("c", "copy_curl", "copy as curl", id="inspector-curl"),
    ]

    def __init__(self, rec: RequestRecord, curl: str) -> None:
        super().__init__()
        self.rec = rec
        """The request shown."""
        self.curl = curl
        """The command that sends it again."""

    def compose(self) -> ComposeResult:
        rec = self.rec
        with Vertical(id="inspector"):
            yield Static(Text(f"request {shown(rec.request_id)}", style="bold"), id="inspector-title")
            with Horizontal(id="inspector-top"):
                yield Static(details(rec), id="inspector-details")
                yield PanePlot(id="inspector-itl", margin_left=7)
            with VerticalScroll(id="inspector-text"):
                yield Static(self._answer(), id="inspector-answer")
            yield Static(id="inspector-curl")
        yield Footer()

    def _answer(self) -> Text:
        rec = self.rec
        if not rec.text_head:
            return Text("(no content came back)", style="italic")
        t = Text(shown(rec.text_head, newlines=True, limit=None))
        if rec.text_tail:
            t.append("\n\n[… the middle of the answer is not kept …]\n\n", style="italic")
            t.append(shown(rec.text_tail, newlines=True, limit=None))
        return t

    def on_mount(self) -> None:
        plot = self.query_one(PanePlot)
        plot.border_title = "gap before each chunk (ms)"
        itl = [v * 1000.0 for v in self.rec.itl]
        if itl:
            plot.plot(list(range(2, len(itl) + 2)), itl, hires_mode=HiResMode.BRAILLE)
            plot.set_ylimits(0, None)
            if len(itl) < 3:  # one or two gaps: readable axes around them, not 0.0000/-0.000 and 1.9999995…2.0000010
                plot.set_ylimits(0, max(itl) * 1.2 or 1.0)
                plot.set_xlimits(1, len(itl) + 2)
        else:
            plot.border_title = "gap before each chunk (ms): one chunk, no gaps"
        self.query_one("#inspector-text").border_title = "what came back"

    def action_copy_curl(self) -> None:
        """Copy the curl command and show it."""
        self.app.copy_to_clipboard(self.curl)
        self.query_one("#inspector-curl", Static).update(Text(shown(self.curl, newlines=True, limit=None), style="dim"))
        self.notify("copied a curl command that sends this request again", timeout=3)


__all__ = ["InspectorScreen", "details"]

"""The text tables of a run's results (``llmsurge run`` at its end, ``llmsurge report``): ``summary.json`` read
back as Rich tables, in the order ``vllm bench serve`` prints. Missing values read as every view shows them
(:mod:`llmsurge.render.format`)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from llmsurge.metrics.figures import FIGURE, LATENCIES, STATS
from llmsurge.metrics.model import Level, RunSummary
from llmsurge.metrics.stats import BUNCHED_NOTE, thin
from llmsurge.redaction import shown
from llmsurge.render.format import MISSING


def _cell(value: float | str | None, fmt: str, weak: bool = False) -> str:
    if value is None:
        return MISSING
    return fmt.format(value) + ("*" if weak else "")


THIN_CAPTION = "* fewer values than the percentile needs (p90 about 10, p99 about 100): read it as the maximum"
BUNCHED_CAPTION = "† the server sent several tokens per write: ITL counts chunks, TPOT is per token"


WIDE = 100
"""A terminal at least this wide gets the end-of-run table as ``vllm bench serve`` prints it (a row per statistic);
a narrower one, or a file, gets latencies as a matrix (a row per metric, a column per statistic)."""


def result_tables(summary: RunSummary, width: int, terminal: bool, title: str = "llmsurge result") -> list[Table]:
    """The end-of-run tables for where they are printed: :func:`summary_table` on a wide terminal; in a file, a CI
    log or a narrow terminal, the totals (:func:`summary_table` without latencies) and :func:`latency_table`."""
    if terminal and width >= WIDE:
        return [summary_table(summary, title)]
    return [summary_table(summary, title, latencies=False), latency_table(summary, width)]


MATRIX_STATS = (("n", "n", 0), ("mean", "mean", 0), ("median", "p50", 0), ("p90", "p90", 1), ("p99", "p99", 0))
"""The latency matrix's columns: (stat, header, priority: higher is dropped sooner on a narrow terminal)."""


def latency_table(summary: RunSummary, width: int = 4096) -> Table:
    """Latencies as metrics in rows and statistics in columns (as AIPerf prints them), in ms; a percentile resting
    on too few values is starred, a metric with no value reads ``—``."""
    run = summary.run
    rows: list[list[Text | str]] = []
    starred = False
    bunched_share = run.value("itl_bunched_share")
    bunched = bunched_share is not None and bunched_share >= BUNCHED_NOTE
    for name, short, _label, _definition in LATENCIES:
        n = run.n(name)
        row: list[Text | str] = [f"{short} (ms)" + (" †" if name == "itl" and bunched else ""), f"{n:,}"]
        for stat, _word, _label in STATS:
            figure = FIGURE[f"{stat}_{name}_ms"]
            starred |= bool(n) and thin(n, figure.quantile)
            row.append(figure.cell(run.value(figure.key) if n else None, n))
        rows.append(row)
    reasoning = run.reasoning
    if reasoning is not None:
        for key, label in (("ttfr", "first reasoning token"), ("answer_ttfc", "first answer token")):
            f = reasoning.figures
            n = reasoning.completed
            cells: list[Text | str] = [f"{label} (ms)", f"{n:,}"]
            cells += [_cell(f.get(f"{stat}_{key}_ms"), "{:.2f}") for stat in ("mean", "median", "p90", "p99")]
            rows.append(cells)
    columns = [("metric", "left", 0)] + [(header, "right", prio) for _s, header, prio in MATRIX_STATS]
    t, dropped = fitted_table("latency", columns, rows, width)
    captions = [THIN_CAPTION] if starred else []
    if bunched:
        captions.append(f"{BUNCHED_CAPTION}; ITL gaps < 0.1 ms (bunched): {bunched_share:.1%}")
    if dropped:
        captions.append(f"too narrow for {', '.join(dropped)}: a wider terminal shows them")
    if captions:
        t.caption = "\n".join(captions)
        t.caption_justify = "left"
    return t


def summary_table(summary: RunSummary, title: str = "llmsurge result", latencies: bool = True) -> Table:
    """The end-of-run table, in the order ``vllm bench serve`` prints, with how many values each latency rests
    on (without them: ``latencies`` False, for :func:`latency_table` beside it). Latencies read ``—`` when no
    request succeeded (summary.json keeps vLLM's 0.0 there); a percentile resting on fewer values than it needs
    (p99: about 100) is starred."""
    run = summary.run
    t = Table(title=title, show_header=False, title_style="bold", min_width=50)
    t.add_column("metric")
    t.add_column("value", justify="right")

    def row(key: str) -> None:  # a figure as the registry titles and rounds it
        figure = FIGURE[key]
        t.add_row(figure.title, figure.cell(run.value(key)))

    row("completed")
    row("failed")
    if run.cancelled:
        row("cancelled")
    if run.errors:
        t.add_row("Errors", Text(", ".join(f"{k}: {v}" for k, v in sorted(run.errors.items()))))
    row("duration")
    row("total_input_tokens")
    row("total_output_tokens")
    if run.prefix_cache_hit_rate is not None:
        row("prefix_cache_hit_rate")
    if run.completed:
        mean_in, p90_in, mean_out, p90_out = run.mean_tokens
        t.add_row(
            "Input / output tokens, mean (p90)",
            f"{mean_in:,.0f} ({p90_in:,.0f}) / {mean_out:,.0f} ({p90_out:,.0f})",
        )
    if run.value("total_inputs"):  # embeddings, rerank
        row("total_inputs")
        row("input_throughput")
        row("input_token_throughput")
    row("request_throughput")
    row("output_throughput")
    row("total_token_throughput")
    if summary.slo:
        t.add_section()
        slo = ", ".join(f"{k.upper()}≤{v:g}ms" for k, v in summary.slo.items())
        t.add_row(Text("SLO", style="bold"), Text(slo))
        row("good_requests")
        row("good_share")
        row("request_goodput")
        row("good_output_throughput")
    if not latencies:
        return t
    starred = False
    bunched_share = run.value("itl_bunched_share")
    bunched = bunched_share is not None and bunched_share >= BUNCHED_NOTE
    for name, _short, label, _definition in LATENCIES:
        n = run.n(name)
        t.add_section()
        t.add_row(Text(label, style="bold"), Text(f"n={n:,}", style="dim") if n else "")
        for stat, _word, _label in STATS:
            figure = FIGURE[f"{stat}_{name}_ms"]
            starred |= thin(n, figure.quantile)
            value = run.value(figure.key) if n else None
            t.add_row(figure.title, figure.cell(value, n))
        if name == "itl" and bunched:
            t.add_row(Text("ITL gaps < 0.1 ms (bunched) †", style="dim"), Text(f"{bunched_share:.1%}", style="dim"))
    reasoning = run.reasoning
    if reasoning is not None:
        t.add_section()
        t.add_row(Text("Reasoning", style="bold"), Text(f"n={reasoning.completed:,}", style="dim"))
        t.add_row("Mean reasoning tokens", _cell(reasoning.mean_reasoning_tokens, "{:.1f}"))
        t.add_row("Median time to first reasoning token (ms)", _cell(reasoning.figures.get("median_ttfr_ms"), "{:.2f}"))
        answer = reasoning.figures.get("median_answer_ttfc_ms")
        t.add_row("Median time to first answer token (ms)", _cell(answer, "{:.2f}"))
    captions = []
    if starred:
        captions.append(THIN_CAPTION)
    if bunched:
        captions.append(BUNCHED_CAPTION)
    if captions:
        t.caption = "\n".join(captions)
    return t


def capacity_line(summary: RunSummary) -> str:
    """A capacity search's answer, said first: ``c=8 is the most that held 95% good; c=9 held 88%`` ('' without
    a search)."""
    cap = summary.capacity
    if cap is None:
        return ""
    target = f"{cap.target_good_share:.0%} good"
    failed = cap.first_failed_level
    beyond = ""
    if failed is not None and failed.good_share is not None:
        beyond = f"; {failed.load} held {failed.good_share:.0%}"
    partial = " (the search was stopped: a partial answer)" if cap.partial else ""
    if cap.max_held_load:
        return f"find-max: {cap.max_held_load} is the most that held {target}{beyond}{partial}"
    return f"find-max: not even the first level held {target}{beyond}{partial}"


def _mean_p90(seg: Level) -> tuple[str, str]:
    """A segment's realised input and output tokens, ``mean/p90`` each (``—`` when nothing succeeded)."""
    if not seg.completed:
        return MISSING, MISSING
    mean_in, p90_in, mean_out, p90_out = seg.mean_tokens
    return f"{mean_in:,.0f}/{p90_in:,.0f}", f"{mean_out:,.0f}/{p90_out:,.0f}"


def segments_table(summary: RunSummary, width: int = 4096) -> Table:
    """One row per segment: the saturation table (throughputs as delivered while each segment was open). Narrower
    than its content (``width``), it drops whole columns, least needed first, and its caption names them."""
    segs = summary.segments
    slo = any("good_share" in s.figures for s in segs)
    columns: list[tuple[str, str, int]] = [  # (name, justify, priority: higher is dropped sooner)
        ("#", "right", 0), ("load", "left", 0), ("done", "right", 1), ("failed", "right", 1), ("req/s", "right", 0),
        ("out tok/s", "right", 0), ("TTFT p50", "right", 1), ("TTFT p99", "right", 0), ("TPOT p50", "right", 2),
        ("cache", "right", 5), ("in mean/p90", "right", 4), ("out mean/p90", "right", 4),
    ]  # fmt: skip
    if slo:
        columns.append(("good", "right", 0))
    rows: list[list[Text | str]] = []
    for s in segs:
        n = s.n("ttft")
        load = Text(s.load)
        if s.starved:
            load.append(" (CPU starved)", style="yellow")
        rate = s.request_throughput
        rows.append(
            [
                str(s.segment),
                load,
                str(s.completed),
                str(s.failed),
                _cell(None if rate is None or rate != rate else rate, "{:.2f}"),
                _cell(s.output_throughput, "{:.1f}"),
                _cell(s.value("median_ttft_ms") if n else None, "{:.1f}"),
                _cell(s.value("p99_ttft_ms") if n else None, "{:.1f}", thin(n, 99.0)),
                _cell(s.value("median_tpot_ms") if s.figures.get("n_tpot") else None, "{:.2f}"),
                _cell(s.prefix_cache_hit_rate, "{:.0%}"),
                *_mean_p90(s),
                *([_cell(s.value("good_share") if s.completed else None, "{:.0%}")] if slo else []),
            ]
        )
    t, dropped = fitted_table("segments", columns, rows, width)
    if dropped:
        t.caption = f"too narrow for {', '.join(dropped)}: a wider terminal shows them"
    return t


def roofline_lines(summary: RunSummary) -> list[str]:
    """One line per segment: decode per stream against its ceiling, and the inputs' sources once."""
    block = summary.roofline
    if not block:
        return []
    if block.get("missing"):
        if not any(block["inputs"].values()):
            return []  # nothing known: not worth a line on every run
        return [f"roofline: needs {' and '.join(block['missing'])} (the server and the GPU did not say)"]
    lines = []
    for seg in summary.segments:
        r = seg.roofline
        if r and r.get("fraction") is not None:
            lines.append(
                f"roofline segment {seg.segment} ({seg.load}): decode {r['measured_per_stream_tok_s']:,.1f}"
                f" tok/s per stream = {r['fraction']:.0%} of the {r['ceiling_per_stream_tok_s']:,.1f} tok/s"
                f" {r['bound']} ceiling at batch {r['batch']:.1f}"
            )
    used = {k: v["source"] for k, v in block["inputs"].items() if v}
    if lines:
        lines.append("roofline inputs: " + ", ".join(f"{k} from {v}" for k, v in used.items()))
    if block.get("note"):
        lines.append(f"roofline: {block['note']}")
    return lines


def turns_table(summary: RunSummary) -> Table:
    """Multi-turn chats: TTFT and prefix-cache hits per turn (turn 1 is cold; later turns carry the history)."""
    t = Table(title="turns")
    for col in ("turn", "done", "prompt tokens", "TTFT p50", "TTFT p90", "cache"):
        t.add_column(col, justify="right")
    for r in summary.run.turns:
        n = r.completed
        t.add_row(
            str(r.turn),
            str(n),
            _cell(r.mean_prompt_tokens, "{:,.0f}"),
            _cell(r.figures.get("median_ttft_ms"), "{:.1f}"),
            _cell(r.figures.get("p90_ttft_ms"), "{:.1f}", thin(n, 90.0)),
            _cell(r.prefix_cache_hit_rate, "{:.0%}"),
        )
    return t


def breakdown_tables(summary: RunSummary) -> list[Table]:
    """Per model and per server (``models``, ``targets``), when the run spread requests over several."""
    out = []
    for key, title in (("models", "per model"), ("targets", "per server")):
        rows = summary.breakdown.get(key)
        if not rows:
            continue
        t = Table(title=title)
        t.add_column("model" if key == "models" else "server")
        for col in ("done", "failed", "out tokens", "TTFT p50", "TTFT p99", "E2EL mean"):
            t.add_column(col, justify="right")
        for name, r in rows.items():
            n = int(r.get("n_ttft") or 0)
            t.add_row(
                Text(shown(str(name))),
                str(int(r.get("completed", 0))),
                Text(str(int(r.get("failed", 0))), style="red" if r.get("failed") else ""),
                _cell(r.get("total_output_tokens"), "{:,.0f}"),
                _cell(r.get("p50_ttft_ms") if n else None, "{:.1f}"),
                _cell(r.get("p99_ttft_ms") if n else None, "{:.1f}", thin(n, 99.0)),
                _cell(r.get("mean_e2el_ms") if r.get("completed") else None, "{:,.1f}"),
            )
        out.append(t)
    return out


def fitted_table(
    title: str, columns: list[tuple[str, str, int]], rows: list[list[Text | str]], width: int
) -> tuple[Table, list[str]]:
    """A table that fits ``width`` by dropping whole columns, least needed first (``columns``: name, justify,
    priority — 0 never dropped, higher dropped sooner), never by cutting a value to ``…``; and the names dropped.
    Each column is as wide as its longest value or its header."""

    def cell_len(v: Text | str) -> int:
        return v.cell_len if isinstance(v, Text) else len(v)

    need = [max([len(name), *(cell_len(r[i]) for r in rows)]) for i, (name, _j, _p) in enumerate(columns)]
    keep = list(range(len(columns)))
    while len(keep) > 1 and sum(need[i] + 3 for i in keep) + 1 > width:
        droppable = [i for i in keep if columns[i][2] > 0]
        if not droppable:
            break
        keep.remove(max(droppable, key=lambda i: (columns[i][2], i)))
    t = Table(title=title)
    for i in keep:
        name, justify, _p = columns[i]
        t.add_column(name, justify=justify, no_wrap=True, min_width=need[i])  # type: ignore[arg-type]
    for r in rows:
        t.add_row(*(r[i] for i in keep))
    return t, [columns[i][0] for i in range(len(columns)) if i not in keep]


TRIAL_FIGURES = (
    "request_throughput", "output_throughput", "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms",
    "median_itl_ms", "median_e2el_ms", "p99_e2el_ms", "error_rate",
)  # fmt: skip
"""The figures a repeated run's table shows, each with its mean and 95% interval over the trials."""


def trials_table(summary: RunSummary, width: int = 4096) -> Table:
    """A repeated run: per figure the trials' mean, its 95% interval (± half its width), and the lowest and highest
    trial — the spread a difference between two setups must beat to be real."""
    trials = summary.trials
    rows: list[list[Text | str]] = []
    if trials is not None:
        for key in TRIAL_FIGURES:
            tf = trials.figures.get(key)
            if tf is None:
                continue
            figure = FIGURE[key]
            scale = 100.0 if figure.share else 1.0  # a fraction: in percentage points, as the figure is shown
            decimals = max(0, figure.decimals - 1) if figure.share else figure.decimals
            mean, half, low, high = (v * scale for v in (tf.mean, tf.half_width, min(tf.values), max(tf.values)))
            rows.append(
                [
                    f"{figure.label} ({'%' if figure.share else figure.unit})",
                    f"{mean:.{decimals}f}",
                    f"± {half:.{decimals}f}",
                    f"{low:.{decimals}f}",
                    f"{high:.{decimals}f}",
                ]
            )
    columns = [("figure", "left", 0), ("mean", "right", 0), ("95% CI", "right", 0), ("min", "right", 1),
               ("max", "right", 1)]  # fmt: skip
    n = trials.n if trials is not None else 0
    title = f"{n} trial{'s' if n != 1 else ''}: mean and 95% confidence interval"
    t, dropped = fitted_table(title, columns, rows, width)
    if dropped:
        t.caption = f"too narrow for {', '.join(dropped)}: a wider terminal shows them"
    return t

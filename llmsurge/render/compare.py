"""A comparison as a terminal table, markdown to paste into a report, JSON, or one self-contained HTML page whose
charts (the saturation curves and the TTFT distributions) come first. No network: the page carries everything."""

from __future__ import annotations

import csv
import html
import io
import math

import numpy as np
from rich.table import Table
from rich.text import Text

from llmsurge.metrics.compare import RESOLUTION, Change, Comparison, Row, saturation_curves
from llmsurge.render.format import MISSING

UP, DOWN = "▲", "▼"
COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")


def _num(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if unit == "%":
        return f"{v:.2f}%"
    if unit == "requests":
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3f}"


def _change_text(c: Change | None) -> str:
    """The change with a sign and an arrow, so it reads without colour; † when noise could not be estimated."""
    if c is None:
        return ""
    mark = "" if c.better is None else (f" {UP}" if c.better else f" {DOWN}")
    dagger = "" if c.noise_known or c.text in ("n/a", "within noise") else " †"
    star = "*" if c.thin and c.text != "n/a" else ""
    return f"{c.text}{star}{mark}{dagger}"


def _title(load: str, matched: bool, prefix: str, unmatched: str) -> str:
    """A level's heading: its load, the whole runs, or a model's or server's rows (``per model …``)."""
    if load.startswith("per "):
        return load
    return f"{prefix}{load}" if matched else unmatched


def tables(cmp: Comparison) -> list[Table]:
    """One rich table per level: better in green with ▲, worse in red with ▼."""
    out = []
    for level in cmp.levels:
        t = Table(title=_title(level.load, cmp.matched, "load ", "whole runs (their loads differ)"))
        t.add_column("metric")
        for i, run in enumerate(cmp.runs):
            t.add_column(Text(run.label + (" (baseline)" if i == 0 else "")), justify="right")
            if i:
                t.add_column("change", justify="right")
        for row in level.rows:
            cells: list[Text | str] = [Text(f"{row.metric.label} ({row.metric.unit})")]
            for value, change in zip(row.values, row.changes, strict=True):
                cells.append(_num(value, row.metric.unit))
                if change is not None:
                    style = "" if change.better is None else ("green" if change.better else "red")
                    cells.append(Text(_change_text(change), style=style))
            t.add_row(*cells)
        out.append(t)
    return out


def markdown(cmp: Comparison) -> str:
    """Tables that drop into a report as written by hand."""
    parts = []
    for level in cmp.levels:
        head = ["Metric"]
        for i, run in enumerate(cmp.runs):
            head.append(run.label + (" (baseline)" if i == 0 else ""))
            if i:
                head.append("Change")
        lines = [f"### {_title(level.load, cmp.matched, 'Load ', 'Whole runs (their loads differ)')}", ""]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|---|" + "---:|" * (len(head) - 1))
        for row in level.rows:
            cells = [f"{row.metric.label} ({row.metric.unit})"]
            for value, change in zip(row.values, row.changes, strict=True):
                cells.append(_num(value, row.metric.unit))
                if change is not None:
                    cells.append(_change_text(change))
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    notes = [f"- {n}" for n in cmp.notes] + [f"- {UP} better, {DOWN} worse; {NOISE_NOTE}"]
    return "\n\n".join(parts) + "\n\n" + "\n".join(notes) + "\n"


NOISE_NOTE = (
    "an arrow only past the row's noise; 'within noise': the 95% interval of the difference (per-request figures:"
    " a bootstrap of each run's requests in blocks of those served together; throughputs: windows of the level;"
    f" shares: their proportions) holds zero, or the change is under {RESOLUTION:.0%}; * a percentile resting on"
    " fewer values than it needs (p90 about 10, p99 about 100): read it as the maximum, no direction"
)


def to_json(cmp: Comparison) -> dict[str, object]:
    """Everything, as data."""

    def row(r: Row) -> dict[str, object]:
        return {
            "metric": r.metric.key,
            "unit": r.metric.unit,
            "lower_is_better": r.metric.lower_is_better,
            "values": r.values,
            "changes": [
                None
                if c is None
                else {"text": c.text, "better": c.better, "interval": c.interval, "noise_estimated": c.noise_known}
                for c in r.changes
            ],
        }

    return {
        "runs": [{"label": r.label, "path": str(r.path), "source": r.source} for r in cmp.runs],
        "matched_by_load": cmp.matched,
        "levels": [{"load": lv.load, "rows": [row(r) for r in lv.rows]} for lv in cmp.levels],
        "notes": cmp.notes,
    }


def csv_text(cmp: Comparison) -> str:
    """One row per figure and level, for a spreadsheet: the level, the figure, its unit, each run's exact value, and
    per candidate its change, its verdict (better, worse, within noise, or none: no noise estimate) and the 95%
    interval of the difference where one was estimated."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    head = ["level", "metric", "unit", *(f"{run.label}" for run in cmp.runs)]
    for run in cmp.runs[1:]:
        head += [
            f"{run.label} change",
            f"{run.label} verdict",
            f"{run.label} interval low",
            f"{run.label} interval high",
        ]
    w.writerow(head)
    for level in cmp.levels:
        for row in level.rows:
            cells: list[object] = [level.load, row.metric.label.strip(), row.metric.unit]
            cells += ["" if v is None else repr(float(v)) for v in row.values]
            for c in row.changes[1:]:
                if c is None:
                    cells += ["", "", "", ""]
                    continue
                if c.better is not None:
                    verdict = "better" if c.better else "worse"
                else:
                    verdict = c.text if c.text in ("within noise", "n/a") else "no noise estimate"
                lo, hi = c.interval if c.interval else ("", "")
                cells += [c.text, verdict, lo, hi]
            w.writerow(cells)
    return out.getvalue()


# ---- HTML -------------------------------------------------------------------------------------------------


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 5, 10) if s * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def svg_chart(
    title: str,
    series: list[tuple[str, list[float], list[float]]],
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
    width: int = 560,
    height: int = 300,
) -> str:
    """A line chart with markers, axes, ticks and a legend, as inline SVG."""
    left, right, top, bottom = 64, 16, 36, 48
    xs = [x for _, sx, _ in series for x in sx]
    ys = [y for _, _, sy in series for y in sy]
    if not xs:
        return f'<svg width="{width}" height="{height}"><text x="10" y="20">{html.escape(title)}: no data</text></svg>'

    def fx(x: float) -> float:
        return math.log2(max(x, 1e-9)) if log_x else x

    x0, x1 = min(map(fx, xs)), max(map(fx, xs))
    pad = (x1 - x0) * 0.06 or 0.5  # margins: a point is never drawn on the frame (one load alone sits mid-axis)
    x0, x1 = x0 - pad, x1 + pad
    y1 = max(ys) * 1.15 or 1.0
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (fx(x) - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - y / y1 * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart" role="img">',
        f'<text x="{left}" y="20" class="title">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" class="axis"/>',
    ]
    for y in _ticks(0, y1):
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{left + pw}" y2="{py(y):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" class="tick" text-anchor="end">{y:g}</text>')
    xticks = sorted(set(xs)) if log_x else [t for t in _ticks(x0, x1) if min(xs) <= t <= max(xs)] or [xs[0]]
    out.extend(
        f'<text x="{px(x):.1f}" y="{top + ph + 16}" class="tick" text-anchor="middle">{x:g}</text>' for x in xticks[:12]
    )
    out.append(
        f'<text x="{left + pw / 2}" y="{height - 8}" class="label" text-anchor="middle">{html.escape(xlabel)}</text>'
    )
    out.append(
        f'<text x="14" y="{top + ph / 2}" class="label" transform="rotate(-90 14 {top + ph / 2})"'
        f' text-anchor="middle">{html.escape(ylabel)}</text>'
    )
    for i, (name, sx, sy) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(sx, sy, strict=True))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(sx) <= 40:
            out += [
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>' for x, y in zip(sx, sy, strict=True)
            ]
        if len(sx) <= 8:  # a few loads: each point says its value
            out += [
                f'<text x="{px(x):.1f}" y="{py(y) - 7:.1f}" class="tick" text-anchor="middle" fill="{color}">'
                f"{_num(y, '')}</text>"
                for x, y in zip(sx, sy, strict=True)
            ]
        ly = top + 4 + i * 16
        out.append(f'<rect x="{left + pw - 150}" y="{ly}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{left + pw - 135}" y="{ly + 9}" class="legend">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _ttft_cdfs(cmp: Comparison) -> list[tuple[str, list[float], list[float]]]:
    series = []
    for run in cmp.runs:
        values = run.values("ttft", None)
        if values is None or not len(values):
            continue
        qs = np.linspace(0, 100, 101)
        series.append((run.label, [float(v) for v in np.percentile(values, qs)], [q / 100 for q in qs]))
    return series


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
.chart .title { font-weight: 600; font-size: 14px; } .chart .tick, .chart .legend { font-size: 11px; }
.chart .label { font-size: 12px; fill: #444; } .chart .axis { stroke: #444; } .chart .grid { stroke: #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; } td { text-align: right; } td:first-child { text-align: left; }
.better { color: #1a7f37; font-weight: 600; } .worse { color: #cf222e; font-weight: 600; } .notes { color: #555; }
"""


def html_page(cmp: Comparison) -> str:
    """One self-contained page: the saturation curves and TTFT distributions first, then the tables."""
    curves = saturation_curves(cmp.runs)
    tput = [(name, [p[0] for p in pts], [p[1] for p in pts]) for name, pts in curves.items() if pts]
    p99 = [(name, [p[0] for p in pts], [p[2] for p in pts]) for name, pts in curves.items() if pts]
    log_x = all(len(pts) > 2 for _n, pts in curves.items())
    charts = [
        svg_chart("Output tokens/s against load", tput, "concurrency (or rate)", "output tok/s", log_x),
        svg_chart("TTFT p99 against load", p99, "concurrency (or rate)", "TTFT p99 (ms)", log_x),
        svg_chart("TTFT distribution (whole run)", _ttft_cdfs(cmp), "TTFT (ms)", "share of requests"),
    ]
    body = [
        "<h1>llmsurge compare: " + " vs ".join(html.escape(r.label) for r in cmp.runs) + "</h1>",
        '<div class="charts">' + "".join(charts) + "</div>",
    ]
    for level in cmp.levels:
        body.append(f"<h2>{html.escape(_title(level.load, cmp.matched, 'Load ', 'Whole runs (loads differ)'))}</h2>")
        head = "<tr><th>metric</th>" + "".join(
            f"<th>{html.escape(r.label)}{' (baseline)' if i == 0 else ''}</th>" + ("<th>change</th>" if i else "")
            for i, r in enumerate(cmp.runs)
        )
        rows = [head + "</tr>"]
        for row in level.rows:
            cells = [f"<td>{html.escape(row.metric.label)} ({row.metric.unit})</td>"]
            for value, change in zip(row.values, row.changes, strict=True):
                cells.append(f"<td>{_num(value, row.metric.unit)}</td>")
                if change is not None:
                    cls = "" if change.better is None else ("better" if change.better else "worse")
                    cells.append(f'<td class="{cls}">{html.escape(_change_text(change))}</td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
        body.append("<table>" + "".join(rows) + "</table>")
    notes = [*cmp.notes, f"{UP} better, {DOWN} worse; {NOISE_NOTE}"]
    body.append('<div class="notes">' + "<br>".join(html.escape(n) for n in notes) + "</div>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>llmsurge compare</title>'
        f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )

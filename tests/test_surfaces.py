"""One finished run, every surface read back: the final TUI frame, the headless table, ``report``, ``compare`` of the
run with itself, ``/api/snapshot`` and ``/metrics`` — each figure checked against summary.json to its rounding."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmsurge.engine.session import RunConfig
from llmsurge.metrics.compare import compare
from llmsurge.metrics.figures import FIGURES
from llmsurge.metrics.model import RunSummary
from llmsurge.metrics.runs import load_run
from llmsurge.presets import find_preset
from llmsurge.render.format import ms, num, percentile_ms
from llmsurge.render.tables import summary_table
from llmsurge.tui.app import make_app
from tests.helpers import free_port, pilot_until, run_cli
from tests.test_tui import _plain, _screen_lines

REQUESTS = 40
POOLING = {"total_inputs", "input_throughput", "input_token_throughput"}  # embeddings and rerank runs only
SLO_ONLY = {"good_requests", "good_share", "request_goodput", "good_output_throughput"}  # with an SLO only


def _row(lines: list[str], start: str, cells: int = 0) -> list[str]:
    """The cells of the first line of a pane that starts with ``start`` (inside its border), of ``cells`` or more."""
    for line in lines:
        for part in re.split(r"[│┃]", line):
            if part.split()[: len(start.split())] == start.split() and len(part.split()) >= cells:
                return part.split()
    raise AssertionError(f"no row {start!r} on screen:\n" + "\n".join(lines))


@pytest.mark.slow
async def test_every_surface_reads_the_figures_of_summary_json(sim_url: str, tmp_path: Path) -> None:
    port = free_port()
    scenario = find_preset("demo").with_overrides(concurrency=4, requests=REQUESTS, output_tokens=32, input_tokens=32)
    out = tmp_path / "results"
    config = RunConfig(
        scenario=scenario, url=sim_url, workers=1, output=out, keep_alive=True, calibrate=False,
        api=f"127.0.0.1:{port}",
    )  # fmt: skip
    app = make_app(config)
    api = f"http://127.0.0.1:{port}"
    async with app.run_test(size=(160, 48)) as pilot:
        bus = app.session.bus
        await pilot_until(pilot, lambda: bus.state == "done", 120)
        version = app.snapshots.snapshot().stats_version  # statistics of the finished run, drawn on every pane
        await pilot_until(pilot, lambda: app.snapshots.snapshot().stats_version > version + 1, 30)
        await pilot.pause(0.5)
        lines = _screen_lines(app.export_screenshot())
        async with httpx.AsyncClient() as client:
            snap = (await client.get(api + "/api/snapshot")).json()["snapshot"]
            metrics = (await client.get(api + "/metrics")).text
        await pilot.press("q")
        await pilot_until(pilot, lambda: not app.is_running, 30)
    s = json.loads((out / "summary.json").read_text())
    seg = s["segments"][0]
    assert s["completed"] == REQUESTS and len(s["segments"]) == 1
    generation = {f.key for f in FIGURES} - POOLING - SLO_ONLY
    assert generation <= s.keys() and generation - {"duration"} <= seg.keys()  # every figure the registry defines

    # the final frame: the load pane, the latency table (segment scope), the segments table, the histogram
    assert _row(lines, "done")[-1] == f"{s['completed']:,}"
    assert _row(lines, "failed")[-1] == f"{s['failed']:,}"
    p50, p99 = _row(lines, "TTFT p50/p99")[-1].split("/")
    assert (p50, p99) == (
        percentile_ms(seg["p50_ttft_ms"], seg["n_ttft"], 50),
        percentile_ms(seg["p99_ttft_ms"], seg["n_ttft"], 99),
    )
    for name in ("TTFT", "TPOT", "E2EL"):
        key = name.lower()
        cells = _row(lines, name, cells=6)[1:]
        expected = [percentile_ms(seg[f"p{q}_{key}_ms"], seg[f"n_{key}"], q) for q in (50, 90, 99)]
        assert cells[:5] == [*expected, ms(seg[f"mean_{key}_ms"]), f"{seg[f'n_{key}']:,}"], (name, cells)
    cells = _row(lines, "1 c=4")
    assert cells[2:9] == [
        num(seg["request_throughput"], 2),
        num(seg["output_throughput"], 0),
        percentile_ms(seg["p50_ttft_ms"], seg["n_ttft"], 50),
        percentile_ms(seg["p99_ttft_ms"], seg["n_ttft"], 99),
        percentile_ms(seg["p50_tpot_ms"], seg["n_tpot"], 50),
        f"{seg['completed']:,}",
        f"{seg['failed']:,}",
    ], cells
    marks = " ".join(_row(lines, "p50"))
    assert f"p50 {percentile_ms(seg['p50_ttft_ms'], seg['n_ttft'], 50)}" in marks
    assert f"p99 {percentile_ms(seg['p99_ttft_ms'], seg['n_ttft'], 99)} ms" in marks
    assert f"n={seg['n_ttft']}" in marks
    rate = [line for line in lines if re.search(r"req/s \(\d+s\)", line)]
    assert len(rate) == 1 and re.search(r"req/s \(\d+s\)\s+[\d.—]+", rate[0]), rate  # one live rate, its window

    # the headless table (what `llmsurge run` prints at its end), two decimals and no separators, as vLLM prints
    table = _plain(summary_table(RunSummary.from_json(s)))
    for label, value in (
        ("Successful requests", f"{s['completed']}"),
        ("Request throughput (req/s)", f"{s['request_throughput']:.2f}"),
        ("Output token throughput (tok/s)", f"{s['output_throughput']:.2f}"),
        ("Mean TTFT (ms)", f"{s['mean_ttft_ms']:.2f}"),
        ("Median TPOT (ms)", f"{s['median_tpot_ms']:.2f}"),
        ("Mean E2EL (ms)", f"{s['mean_e2el_ms']:.2f}"),
    ):
        assert re.search(re.escape(label) + r"\s*│\s*" + re.escape(value) + r"\*?\s", table), (label, value, table)

    # report: its recomputation from requests.jsonl agrees (exit 0) and shows the same counts
    r = run_cli("report", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(rf"Successful requests\s*│\s*{s['completed']}\s", r.stdout), r.stdout
    mean_p50 = f"{s['mean_ttft_ms']:.2f}\\*?\\s*│\\s*{s['median_ttft_ms']:.2f}"  # the latency matrix (a pipe)
    assert re.search(rf"TTFT \(ms\)\s*│\s*{s['n_ttft']}\s*│\s*{mean_p50}", r.stdout), r.stdout

    # compare with itself: the summary's values in every row, no change anywhere
    cmp = compare([load_run(out), load_run(out)])
    rows = {row.metric.label: row for row in cmp.levels[0].rows}
    assert rows["TTFT p50"].values == [seg["p50_ttft_ms"]] * 2
    assert rows["E2EL mean"].values == [seg["mean_e2el_ms"]] * 2
    assert rows["request throughput"].values == [seg["request_throughput"]] * 2
    assert all(row.changes[1] is not None and row.changes[1].better is None for row in rows.values())

    # /api/snapshot: the same figures, unrounded
    assert (snap["completed"], snap["failed"], snap["cancelled"]) == (s["completed"], s["failed"], s["cancelled"])
    assert snap["output_tokens"] == s["total_output_tokens"]
    latency: dict[str, Any] = snap["segment_figures"]["latency"]
    for key in ("ttft", "tpot", "e2el", "itl"):
        assert latency[key]["n"] == seg[f"n_{key}"]
        assert latency[key]["mean"] == pytest.approx(seg[f"mean_{key}_ms"], rel=1e-9)
        assert dict(latency[key]["quantiles"]) == pytest.approx(
            {50.0: seg[f"p50_{key}_ms"], 90.0: seg[f"p90_{key}_ms"], 99.0: seg[f"p99_{key}_ms"]}, rel=1e-9
        )
    row = snap["segments"][0]
    assert row["request_throughput"] == pytest.approx(seg["request_throughput"], rel=1e-9)
    assert row["output_throughput"] == pytest.approx(seg["output_throughput"], rel=1e-9)

    # /metrics: the counters and the latency histograms' sums
    samples = {
        (x.name, x.labels.get("segment")): x.value
        for family in text_string_to_metric_families(metrics)
        for x in family.samples
    }
    assert samples[("llmsurge_requests_ok_total", "1")] == s["completed"]
    assert samples[("llmsurge_requests_cancelled_total", "1")] == s["cancelled"]
    assert samples[("llmsurge_output_tokens_total", "1")] == s["total_output_tokens"]
    for key in ("ttft", "tpot", "e2el"):
        count, total = samples[(f"llmsurge_{key}_seconds_count", "1")], samples[(f"llmsurge_{key}_seconds_sum", "1")]
        assert count == seg[f"n_{key}"]
        assert total / count * 1000 == pytest.approx(seg[f"mean_{key}_ms"], rel=1e-6)


def test_every_figure_is_defined_once_and_is_what_a_summary_carries(tmp_path: Path) -> None:
    """The registry names what summary.json holds (a figure it lists and no summary has is a typo), each with a
    definition, a unit and a direction; compare's rows and the end-of-run table's titles come from it."""
    from llmsurge.metrics.compare import METRICS
    from llmsurge.metrics.figures import FIGURE
    from tests.synthetic import save_run

    s = json.loads((save_run(tmp_path / "r", "r", seed=1) / "summary.json").read_text())
    cache = {"prefix_cache_hit_rate"}  # when the server reports cached tokens (a real run's summary has it)
    assert {f.key for f in FIGURES} - POOLING - SLO_ONLY - cache <= s.keys()
    assert len(FIGURE) == len(FIGURES) and all(f.definition and f.unit and f.title for f in FIGURES)
    assert [m for m in METRICS if m.key in FIGURE] == [FIGURE[m.key] for m in METRICS if m.key in FIGURE]
    table = _plain(summary_table(RunSummary.from_json(s)))
    for f in FIGURES:
        if s.get(f.key) is not None and f.key != "error_rate" and (f.key != "cancelled" or s["cancelled"]):
            assert f.title in table and f.cell(s[f.key], s.get(f"n_{f.metric}", 0)) in table, f

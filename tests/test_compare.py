"""Compare runs: saved runs from the simulated server, a `vllm bench serve` result, the HTML report in a real
headless Chromium, and the live baseline in the TUI."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llmsurge.metrics.compare import compare, speed_change
from llmsurge.metrics.model import RunSummary
from llmsurge.metrics.runs import load_run
from llmsurge.render.compare import COLORS, markdown
from llmsurge.sim.model import EngineTiming
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import SimConfig
from tests.conftest import FIXTURES
from tests.helpers import CHROMIUM_ARGS, CLI, chromium, palette, run_cli, until
from tests.helpers import run_cli as _run
from tests.synthetic import save_run

LATENCY_HEADLINES = ("TTFT p50", "TPOT p50", "E2EL p50")


def test_synthetic_runs_are_what_a_run_writes(saved: dict[str, Path]) -> None:
    r = _run("report", str(saved["base"]))  # the summary agrees with its requests, as a real run's does
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three saved runs at c=8, made in code: two of the same setup (different seeds), one whose TTFT doubled and
    whose decode slowed by half (a server with a quarter of the batch)."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "base": save_run(root / "base", "base", seed=1, date="2026-11-30T10:00:00"),
        "again": save_run(root / "again", "again", seed=2, date="2026-11-30T10:05:00"),
        "seqs4": save_run(root / "seqs4", "seqs4", seed=3, ttft_ms=80.0, tpot_ms=30.0, date="2026-11-30T10:10:00"),
    }


def _rows(cmp: Any, level: int = 0) -> dict[str, Any]:
    return {row.metric.label: row for row in cmp.levels[level].rows}


def test_a_real_difference_is_named_and_identical_runs_are_within_noise(saved: dict[str, Path]) -> None:
    cmp = compare([load_run(saved["base"]), load_run(saved["again"]), load_run(saved["seqs4"])])
    assert cmp.matched and [lv.load for lv in cmp.levels] == ["c=8"]
    rows = _rows(cmp)
    for label in LATENCY_HEADLINES:
        same, different = rows[label].changes[1], rows[label].changes[2]
        assert same is not None and same.text == "within noise", (label, same)
        assert different is not None and different.noise_known and different.text != "within noise", (label, different)
    ttft = rows["TTFT p50"].changes[2]
    assert ttft is not None and ttft.better is False  # a quarter of the batch: requests wait, TTFT worse
    assert "slower" in ttft.text or ttft.text.startswith("+")
    latency = [r for r in cmp.levels[0].rows if r.metric.stat is not None]
    quiet = sum(1 for r in latency if r.changes[1] is not None and r.changes[1].text == "within noise")
    assert quiet >= 0.75 * len(latency)  # the same setup twice: (nearly) nothing to report


@pytest.mark.slow
def test_cli_tables_markdown_and_json(saved: dict[str, Path]) -> None:
    r = _run("compare", str(saved["base"]), str(saved["seqs4"]))
    assert r.returncode == 0 and "load c=8" in r.stdout and "▼" in r.stdout
    md = _run("compare", str(saved["base"]), str(saved["seqs4"]), "--format", "markdown").stdout
    assert md.startswith("### Load c=8") and "| Metric | base (baseline) | seqs4 | Change |" in md
    data = json.loads(_run("compare", str(saved["base"]), str(saved["again"]), "--format", "json").stdout)
    assert data["matched_by_load"] and data["runs"][1]["label"] == "again"
    assert _run("compare", str(saved["base"])).returncode == 2  # a baseline alone: one line


def test_csv_for_a_spreadsheet(saved: dict[str, Path], tmp_path: Path) -> None:
    """``compare --format csv``: a row per figure with each run's exact value and the verdict; ``report --format
    csv``: every request a row, outside text kept exact (quotes, commas, newlines) through CSV's quoting."""
    import csv

    rows = list(
        csv.DictReader(io.StringIO(_run("compare", str(saved["base"]), str(saved["seqs4"]), "--format", "csv").stdout))
    )
    ttft = next(r for r in rows if r["metric"] == "TTFT p50")
    base = json.loads((saved["base"] / "summary.json").read_text())["segments"][0]
    assert ttft["level"] == "c=8" and ttft["unit"] == "ms" and float(ttft["base"]) == base["median_ttft_ms"]
    assert ttft["seqs4 verdict"] == "worse" and float(ttft["seqs4 interval low"]) > 0
    run = tmp_path / "run"
    shutil.copytree(saved["base"], run)
    lines = (run / "requests.jsonl").read_text().splitlines()
    odd = json.loads(lines[0]) | {"status": "failed", "error_kind": "http_500", "error": 'a "quoted", comma\nline'}
    (run / "requests.jsonl").write_text("\n".join([json.dumps(odd), *lines[1:]]) + "\n")
    r = _run("report", str(run), "--format", "csv")
    assert r.returncode == 0, r.stderr
    got = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(got) == len(lines) and got[0]["error"] == 'a "quoted", comma\nline'
    assert [float(g["ttft_ms"]) for g in got[1:5]] == [json.loads(x)["ttft_ms"] for x in lines[1:5]]
    assert int(got[1]["itl_count"]) == len(json.loads(lines[1])["itl_ms"])


def test_speed_changes_read_as_people_write_them() -> None:
    assert speed_change(10979, 224.5, lower_is_better=True) == ("49x faster", True)
    assert speed_change(84.3, 40.1, lower_is_better=False) == ("2.1x slower", False)
    assert speed_change(71, 143, lower_is_better=True) == ("2.0x slower", False)  # a TTFT that doubled
    assert speed_change(100, 5, lower_is_better=False) == ("20x slower", False)
    assert speed_change(139, 620, lower_is_better=True, amount=True) == ("4.5x higher", False)  # watts
    assert speed_change(2.16, 0.204, lower_is_better=False, amount=True) == ("11x lower", False)  # tokens per joule
    assert speed_change(84.3, 43.3, lower_is_better=False) == ("-48.6%", False)  # within 2x: a percentage
    assert speed_change(1002, 1661, lower_is_better=False)[0] == "+65.8%"
    assert speed_change(7001, 4513, lower_is_better=True) == ("-35.5%", True)


def test_a_vllm_bench_serve_result_is_a_baseline(saved: dict[str, Path]) -> None:
    vllm = load_run(FIXTURES / "vllm_bench_serve.json")
    assert vllm.source == "vllm bench serve" and vllm.segments[0].load == "c=8"
    cmp = compare([vllm, load_run(saved["base"])])
    assert cmp.matched and cmp.levels[0].load == "c=8"  # its max_concurrency 8 matches our c=8 segment
    rows = _rows(cmp)
    raw = json.loads((FIXTURES / "vllm_bench_serve.json").read_text())
    assert rows["TTFT p50"].values[0] == pytest.approx(raw["median_ttft_ms"])
    assert rows["TTFT p50"].changes[1] is not None and rows["TTFT p50"].changes[1].noise_known  # its ttfts kept
    assert rows["E2EL p50"].changes[1] is not None and not rows["E2EL p50"].changes[1].noise_known  # no e2els
    assert "| Metric | vllm_bench_serve (baseline) | base | Change |" in markdown(cmp)


def test_runs_lists_saved_runs_newest_first(saved: dict[str, Path]) -> None:
    r = _run("runs", str(saved["base"].parent))
    assert r.returncode == 0
    lines = r.stdout
    assert "seqs4" in lines and "base" in lines and "again" in lines
    assert lines.index("seqs4") < lines.index("again") < lines.index("base")
    assert json.loads((saved["base"] / "summary.json").read_text())["name"] == "base"
    narrow = subprocess.run(
        [*CLI, "runs", str(saved["base"].parent)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    assert narrow.returncode == 0 and "…" not in narrow.stdout, narrow.stdout  # columns dropped, no value cut
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80, narrow.stdout
    assert "seqs4" in narrow.stdout and "too narrow for" in narrow.stdout
    assert re.search(r"\b\d+/\d+\b", narrow.stdout)  # done/failed kept whole


@pytest.mark.slow
def test_html_report_charts_render_in_a_real_browser(saved: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "compare.html"
    r = _run("compare", str(saved["base"]), str(saved["seqs4"]), "--format", "html", "-o", str(page_file))
    assert r.returncode == 0, r.stderr
    text = page_file.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
    assert text.index("<svg") < text.index("<table")  # the charts come first
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_file.as_uri())
        charts = page.locator("svg.chart")
        assert charts.count() == 3
        shot = charts.nth(2).screenshot()  # the TTFT distributions, overlaid
        browser.close()
    img = Image.open(io.BytesIO(shot)).convert("RGB")
    colours = {_hex(c) for c in COLORS[:2]}
    width, height = img.size
    drawn = sum(1 for x in range(width) for y in range(height) if _near(img.getpixel((x, y)), colours))
    assert drawn > 200, drawn  # both runs' curves are on the page


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _near(px: tuple[int, int, int], colours: set[tuple[int, int, int]]) -> bool:
    return any(abs(px[0] - c[0]) + abs(px[1] - c[1]) + abs(px[2] - c[2]) < 40 for c in colours)


@pytest.mark.slow
async def test_live_baseline_in_the_tui(saved: dict[str, Path], tmp_path: Path) -> None:
    from llmsurge.engine.session import RunConfig
    from llmsurge.presets import find_preset
    from llmsurge.tui.app import make_app
    from llmsurge.widgets.segments_table import SegmentsTable

    timing = EngineTiming(step_base=0.01, step_per_seq=0.0002, prefill_per_token=0.00005, max_seqs=4)
    with SimProcess(SimConfig(timing=timing)) as sim:
        scenario = find_preset("demo").with_overrides(concurrency=8, output_tokens=40, input_tokens=64)
        cfg = RunConfig(
            scenario=scenario, url=sim.url, workers=1, output=tmp_path / "r", keep_alive=True, calibrate=False,
            baseline=saved["base"],
        )  # fmt: skip
        app = make_app(cfg)
        async with app.run_test(size=(200, 50)) as pilot:
            await until(lambda: app.baseline is not None and bool(app.session.bus.view().segments), 60, pilot)
            await until(lambda: app.session.bus.view().segments[0].ok >= 16, 60, pilot)
            table = app.screen.query_one(SegmentsTable)

            def compared() -> list[str]:
                return [str(c) for c in table.get_row_at(0)] if table.row_count else []

            await until(
                lambda: [str(c.label) for c in table.columns.values()][-2:] == ["vs base tok/s", "vs base p99"],
                30,
                pilot,
            )
            # a quarter of the batch: p99 TTFT worse than base, once the queued requests are in (the first ones ran
            # at once and the table may show them before the rest are in)
            await until(lambda: compared()[-1:] != [] and compared()[-1].endswith("▼"), 30, pilot, why=compared)
            app.baseline = None
            await palette(pilot, f"baseline {saved['again']}")
            await until(lambda: app.baseline is not None and app.baseline.label == "again", 20, pilot)
            await pilot.press("q")
            await until(lambda: not app.is_running, 60, pilot)


@pytest.mark.slow
def test_html_through_a_redirect_goes_to_stdout_and_no_file_is_overwritten(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    runs = [str(saved["base"]), str(saved["seqs4"])]
    page = tmp_path / "report.html"
    with open(page, "w") as f:  # llmsurge compare A B --format html > report.html
        r = subprocess.run([*CLI, "compare", *runs, "--format", "html"], stdout=f, stderr=subprocess.PIPE, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == b""
    text = page.read_text()
    assert text.lstrip().lower().startswith("<!doctype html") and text.rstrip().endswith("</html>")
    assert not (tmp_path / "compare.html").exists()
    kept = tmp_path / "kept.html"
    kept.write_text("an earlier report")
    r = run_cli("compare", *runs, "--format", "html", "-o", str(kept))
    assert r.returncode == 2 and "--force" in r.stderr and kept.read_text() == "an earlier report"
    r = run_cli("compare", *runs, "--format", "html", "-o", str(kept), "--force")
    assert r.returncode == 0 and r.stdout == "" and f"wrote {kept}" in r.stderr and "</html>" in kept.read_text()


def test_one_load_is_a_point_mid_axis_with_its_value() -> None:
    import re

    from llmsurge.render.compare import svg_chart

    svg = svg_chart("t", [("a", [8.0], [356.0]), ("b", [8.0], [339.0])], "load", "tok/s", log_x=True)
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)]
    assert xs and all(abs(x - (64 + (560 - 64 - 16) / 2)) < 1 for x in xs)  # centred, not on the frame's edges
    assert ">356</text>" in svg and ">339</text>" in svg  # each point says its value


def test_requests_of_one_batch_are_not_independent_samples(tmp_path: Path) -> None:
    """Runs whose requests come in waves (each 8 share a factor, as a batch's share its queue): over 20 pairs of the
    same setup, the block bootstrap calls TTFT within noise nearly always; the plain bootstrap, treating each request
    as independent, raises false alarms — the data holds what the estimate must see."""
    import numpy as np

    from llmsurge.metrics.compare import bootstrap_interval

    pairs = [
        (
            load_run(save_run(tmp_path / f"a{k}", "a", seed=2 * k, waves=0.4)),
            load_run(save_run(tmp_path / f"b{k}", "b", seed=2 * k + 1, waves=0.4)),
        )
        for k in range(20)
    ]
    quiet = 0
    plain_alarms = 0
    for a, b in pairs:
        rows = _rows(compare([a, b]))
        quiet += all(rows[f"TTFT {s}"].changes[1].better is None for s in ("p50", "p90", "mean"))  # type: ignore[union-attr]
        va, vb = a.values("ttft", "c=8"), b.values("ttft", "c=8")
        assert va is not None and vb is not None
        lo, hi = bootstrap_interval(va, vb, "mean", blocks=(1, 1))
        plain_alarms += not lo <= 0 <= hi and abs(np.mean(vb) - np.mean(va)) > 0.02 * np.mean(va)
    assert quiet >= 18, quiet  # 3 rows a pair: ~5% of rows may still be alarms, so not 20
    assert plain_alarms >= 4, plain_alarms


def test_an_arrow_only_past_the_noise_estimated_for_its_row(saved: dict[str, Path], tmp_path: Path) -> None:
    """Throughputs carry a noise estimate of their own (the rate in windows of the level); an error rate its
    proportions'; a row with one figure per run and no estimate (the server's clock) shows its change without an
    arrow, marked †."""
    from llmsurge.render.compare import _change_text

    base, again, slow = (load_run(saved[k]) for k in ("base", "again", "seqs4"))
    rows = _rows(compare([base, again, slow]))
    for label in ("request throughput", "output throughput"):
        same, different = rows[label].changes[1], rows[label].changes[2]
        assert same is not None and same.noise_known and same.better is None, (label, same)
        assert different is not None and different.noise_known and different.better is False, (label, different)
    error = rows["error rate"].changes[1]
    assert error is not None and error.better is None and error.noise_known
    # one figure per run: a server-side row written into both summaries differs by 15%, and gets no arrow
    for name, queue in (("x", 20.0), ("y", 23.0)):
        folder = save_run(tmp_path / name, name, seed=5 if name == "x" else 6)
        summary = json.loads((folder / "summary.json").read_text())
        ttft = summary["segments"][0]["mean_ttft_ms"]
        summary["segments"][0]["reconciliation"] = {
            "client_ttft_ms_mean": ttft,
            "server_ttft_ms_mean": ttft - 2.0,
            "gap_ms_mean": 2.0,
            "client_side_ms_mean": 0.5,
            "server_queue_ms_mean": queue,
            "server_prefill_ms_mean": ttft - 2.0 - queue,
        }
        (folder / "summary.json").write_text(json.dumps(summary))
    queue_row = _rows(compare([load_run(tmp_path / "x"), load_run(tmp_path / "y")]))["server's queue (mean)"]
    change = queue_row.changes[1]
    assert change is not None and change.better is None and not change.noise_known
    assert _change_text(change) == "+15.0% †"


def test_every_table_fits_80_columns_and_a_file_without_a_cut_value(saved: dict[str, Path]) -> None:
    """`report`, `compare`, `runs` and the segments table at 80 columns, and into a file: whole columns dropped
    (and named) rather than a value cut to "…"; in a file, every column."""
    from rich.console import Console

    from llmsurge.render.tables import segments_table

    folder = str(saved["base"].parent)
    for argv in (
        ["report", str(saved["base"])],
        ["compare", str(saved["base"]), str(saved["again"]), str(saved["seqs4"])],
        ["runs", folder],
    ):
        for env in ({"COLUMNS": "80"}, {}):  # a narrow terminal's width, and a file's (sized to the content)
            r = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60, env={**os.environ, **env})
            assert r.returncode == 0, (argv, r.stderr)
            assert "…" not in r.stdout, (argv, env, r.stdout)
            if env:
                assert max(len(line) for line in r.stdout.splitlines()) <= 80, (argv, r.stdout)
    summary = json.loads((saved["base"] / "summary.json").read_text())
    summary["segments"] = [dict(summary["segments"][0], segment=i, load=f"c={2**i}") for i in range(1, 6)]
    for width in (80, 4096):
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(segments_table(RunSummary.from_json(summary), width))
        text = console.export_text()
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= width, text
        assert "c=32" in text and ("too narrow for" in text) == (width == 80)


def test_the_end_of_run_table_is_vllms_on_a_wide_terminal_and_a_matrix_in_a_file(saved: dict[str, Path]) -> None:
    """A wide terminal reads a row per statistic, as `vllm bench serve` prints; a file, a CI log or a narrow
    terminal reads latencies as metrics × statistics — the same values, none cut."""
    from rich.console import Console

    from llmsurge.render.tables import result_tables

    s = RunSummary.from_json(json.loads((saved["base"] / "summary.json").read_text()))

    def text(width: int, terminal: bool) -> str:
        console = Console(width=width, record=True, file=io.StringIO())
        for table in result_tables(s, width, terminal):
            console.print(table)
        return console.export_text()

    wide = text(160, True)
    assert "Median TTFT (ms)" in wide and "P99 E2EL (ms)" in wide and "│ p99" not in wide
    for narrow in (text(80, True), text(4096, False)):
        assert "Median TTFT (ms)" not in narrow and "…" not in narrow
        assert max(len(line) for line in narrow.splitlines()) <= 80
        for metric in ("ttft", "tpot", "itl", "e2el"):
            mean, p50, p99 = (s.run.value(f"{k}_{metric}_ms") for k in ("mean", "median", "p99"))
            row = next(line for line in narrow.splitlines() if line.startswith(f"│ {metric.upper()} (ms)"))
            cells = [c.strip().rstrip("*") for c in row.split("│")[2:-1]]
            assert cells[0] == f"{s.run.n(metric):,}" and cells[1] == f"{mean:.2f}" and cells[2] == f"{p50:.2f}"
            assert cells[-1] == f"{p99:.2f}", (row, cells)

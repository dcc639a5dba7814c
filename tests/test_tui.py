"""The TUI: keys change what the workers do (real sim, real sockets), and snapshots of its screens."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmsurge.engine.session import RunConfig
from llmsurge.metrics.bus import RATE_ENOUGH
from llmsurge.presets import find_preset
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import Faults, SimConfig
from llmsurge.tui.app import LLMSurgeApp, make_app
from llmsurge.tui.screens.presets import PresetPicker
from tests.conftest import quick_timing
from tests.helpers import palette
from tests.helpers import pilot_until as _until
from tests.tui_data import seeded_snapshot

SIZE = (160, 48)


def _config(url: str, tmp_path: Path, concurrency: int = 2) -> RunConfig:
    scenario = find_preset("demo").with_overrides(concurrency=concurrency, output_tokens=64, input_tokens=32)
    return RunConfig(
        scenario=scenario, url=url, workers=1, output=tmp_path / "results", keep_alive=True, calibrate=False
    )


def _plain(renderable: object) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def _load(app: LLMSurgeApp) -> object:
    assert app.session.controller is not None
    return app.session.controller.load


@pytest.mark.slow
async def test_every_key_steers_the_run(sim_url: str, tmp_path: Path) -> None:
    app = make_app(_config(sim_url, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        bus = app.session.bus
        await _until(pilot, lambda: bus.inflight_total == 2)
        assert len(bus.segments) == 1

        await pilot.press("plus")
        await _until(pilot, lambda: bus.inflight_total == 3)
        await pilot.press("minus")
        await _until(pilot, lambda: bus.inflight_total == 2)
        for expected in (4, 8, 16):
            await pilot.press("right_square_bracket")
            await _until(pilot, lambda e=expected: bus.inflight_total == e)
        await pilot.press("left_square_bracket")
        await _until(pilot, lambda: bus.inflight_total == 8)
        assert [s.label for s in bus.segments] == ["c=2", "c=3", "c=2", "c=4", "c=8", "c=16", "c=8"]

        def held() -> float | None:  # the rate the closed loop holds, over enough completions of its segment
            return bus.view().request_rate.value(enough=RATE_ENOUGH)

        await pilot.press("r")  # too soon after a change: not measured yet, so nothing moves
        assert [s.label for s in bus.segments][-1] == "c=8" or held() is not None
        await _until(pilot, lambda: held() is not None)
        before = held()
        assert before is not None
        await pilot.press("r")  # closed loop → open loop a step above the rate it held: never the wrong way
        rate = _load(app).rate  # type: ignore[attr-defined]
        assert rate is not None and rate >= 0.95 * before * 1.1, (rate, before)
        await pilot.press("r")
        assert _load(app).rate > rate  # type: ignore[attr-defined]
        await pilot.press("R")
        await pilot.press("R")
        assert _load(app).rate < rate  # type: ignore[attr-defined]
        assert bus.segments[-1].label.startswith("r=")

        await pilot.press("space")
        assert app.session.controller is not None and app.session.controller.paused
        await _until(pilot, lambda: bus.inflight_total == 0)  # in flight drains to zero
        assert bus.state == "paused"
        started = bus.started_total
        assert bus.segments[-1].label == "paused"  # the pause is its own segment: no rate averages it in
        await pilot.press("space")
        await _until(pilot, lambda: bus.started_total > started)  # new requests start after resume
        assert not app.session.controller.paused
        assert bus.segments[-2].label == "paused" and bus.segments[-1].label == bus.segments[-3].label

        await pilot.press("p")
        assert isinstance(app.screen, PresetPicker)
        picker = app.screen
        from textual.widgets import OptionList

        ol = picker.query_one(OptionList)
        assert ol.highlighted is not None and ol.get_option_at_index(ol.highlighted).id == "demo"  # the running one
        ol.highlighted = next(i for i in range(ol.option_count) if ol.get_option_at_index(i).id == "min-latency")
        await pilot.press("enter")
        await _until(pilot, lambda: bus.scenario == "min-latency")
        assert not isinstance(app.screen, PresetPicker)
        assert bus.segments[-1].scenario == "min-latency" and bus.segments[-1].label == "c=1"

        await pilot.press("s")
        summary = tmp_path / "results" / "summary.json"
        assert summary.exists()
        assert json.loads(summary.read_text())["segments"][0]["load"] == "c=2"

        await pilot.press("q")
        await _until(pilot, lambda: not app.is_running, 20)
    assert app.return_value == summary
    data = json.loads(summary.read_text())
    rows = [json.loads(x) for x in (tmp_path / "results" / "requests.jsonl").read_text().splitlines()]
    rows = [r for r in rows if not r["warmup"]]
    assert data["completed"] + data["failed"] + data["cancelled"] == len(rows)
    assert len(data["segments"]) == 14  # the pause and the resume each opened one


@pytest.mark.slow
async def test_palette_exact_values(sim_url: str, tmp_path: Path) -> None:
    app = make_app(_config(sim_url, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.session.controller is not None and app.session.bus.inflight_total == 2)
        await palette(pilot, "concurrency 5")
        await _until(pilot, lambda: app.session.bus.inflight_total == 5)
        for beyond in ("concurrency 0", "concurrency 200000"):  # the limits a flag and the live API have
            await palette(pilot, beyond)
            await _until(
                pilot, lambda: any("concurrency must be from 1 to 100,000" in n.message for n in app._notifications)
            )
            assert app.session.bus.segments[-1].label == "c=5"  # nothing changed: not 1, not 200,000
            app.clear_notifications()
        await palette(pilot, "rate 12.5")
        await _until(pilot, lambda: _load(app).rate == 12.5)  # type: ignore[attr-defined]
        assert app.session.bus.segments[-1].label == "r=12.5/s poisson"
        await pilot.press("q")


@pytest.mark.slow
async def test_survives_faults_and_a_server_that_goes_away(tmp_path: Path) -> None:
    faults = Faults.parse("http500=0.1,reset=0.1,malformed=0.1,no_usage=0.1")
    sim = SimProcess(SimConfig(timing=quick_timing(), faults=faults))
    sim.start()
    app = make_app(_config(sim.url, tmp_path, concurrency=8))
    try:
        async with app.run_test(size=SIZE) as pilot:
            bus = app.session.bus
            await _until(pilot, lambda: app.snapshots.snapshot().failed > 5 and app.snapshots.snapshot().completed > 5)
            from llmsurge.widgets.load_panel import LoadPanel

            def panel_text() -> str:
                return _plain(app.screen.query_one(LoadPanel).content)

            await _until(pilot, lambda: "failed" in panel_text() and "errors" in panel_text())
            sim.stop()  # the server goes away mid-run
            await _until(pilot, lambda: bus.view().errors.get("connect", 0) > 0, 20)
            assert app.is_running and bus.state == "running"
            from llmsurge.widgets.request_stream import RequestStream

            stream = app.screen.query_one(RequestStream)
            await _until(pilot, lambda: any(line.rstrip().endswith("connect") for line in stream.row_texts()))
            await pilot.press("q")
            await _until(pilot, lambda: not app.is_running, 20)
    finally:
        sim.stop()
    data = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert data["errors"]["connect"] > 0 and data["errors"].get("http_500", 0) > 0


@pytest.mark.slow
async def test_waits_for_a_server_that_is_not_up_yet(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(_config(f"http://127.0.0.1:{port}", tmp_path))
    sim = SimProcess(SimConfig(timing=quick_timing()), port=port)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: app.session.bus.state == "waiting")
            from llmsurge.widgets.status_line import StatusLine

            await _until(pilot, lambda: "WAITING FOR SERVER" in _plain(app.screen.query_one(StatusLine).content))
            await asyncio.to_thread(sim.start)
            await _until(pilot, lambda: app.session.bus.inflight_total == 2, 20)
            await pilot.press("q")
    finally:
        sim.stop()


async def _settle(pilot: Any) -> None:
    """Wait until every pane is mounted, draw the seeded snapshot, and let the plots render (slow CI too)."""
    from llmsurge.tui.screens.main import MainScreen

    app = pilot.app
    for _ in range(200):
        if isinstance(app.screen, MainScreen) and app.screen.ready:
            break
        await pilot.pause(0.05)
    app.refresh_panes(full=True)
    await pilot.pause(0.5)
    await pilot.wait_for_scheduled_animations()


def _static_app() -> LLMSurgeApp:
    snap = seeded_snapshot()
    cfg = RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000")
    return make_app(cfg, snapshot_source=lambda: snap)


@pytest.fixture
def no_user_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSURGE_PRESETS_DIR", str(tmp_path / "none"))


def test_snapshot_main_screen(snap_compare: Callable[..., bool], no_user_presets: None) -> None:
    async def ready(pilot: object) -> None:
        await _settle(pilot)

    assert snap_compare(_static_app(), terminal_size=SIZE, run_before=ready)


def test_snapshot_main_screen_small(snap_compare: Callable[..., bool], no_user_presets: None) -> None:
    async def ready(pilot: object) -> None:
        await _settle(pilot)

    assert snap_compare(_static_app(), terminal_size=(100, 30), run_before=ready)


def test_snapshot_preset_picker(snap_compare: Callable[..., bool], no_user_presets: None) -> None:
    async def open_picker(pilot: object) -> None:
        await _settle(pilot)
        await pilot.press("p")  # type: ignore[attr-defined]
        await pilot.pause(0.5)  # type: ignore[attr-defined]

    assert snap_compare(_static_app(), terminal_size=SIZE, run_before=open_picker)


async def test_client_saturation_shown_on_screen() -> None:
    import dataclasses

    from llmsurge.metrics.health import worst_health
    from llmsurge.widgets.load_panel import LoadPanel

    snap = dataclasses.replace(seeded_snapshot(), client=worst_health(1, 180.0, 0.97, 30.0))
    cfg = RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000")
    app = make_app(cfg, snapshot_source=lambda: snap)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert "CLIENT BUSY" in _plain(app.screen.query_one(LoadPanel).content)


async def test_status_line_never_shows_a_url_password(sim_url: str, tmp_path: Path) -> None:
    from llmsurge.widgets.status_line import StatusLine

    url = sim_url.replace("http://", "http://bob:s3cret-PASS@")
    app = make_app(_config(url, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.session.bus.inflight_total == 2)
        await _until(pilot, lambda: sim_url.split("//")[1] in _plain(app.screen.query_one(StatusLine).content))
        line = _plain(app.screen.query_one(StatusLine).content)
        assert "s3cret" not in line and "bob" not in line
        await pilot.press("q")
        await _until(pilot, lambda: not app.is_running, 20)
    assert "s3cret-PASS" not in "".join(f.read_text() for f in (tmp_path / "results").iterdir())


async def test_preset_picker_names_bad_files_and_does_not_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.widgets import OptionList

    presets = tmp_path / "presets"
    (presets / "x.toml").mkdir(parents=True)
    (presets / "latin.toml").write_bytes(b'name = "caf\xe9"\n')
    (presets / "mine.toml").write_text(
        'name = "mine[/b]"\ndescription = "[bold red]x[/]"\n[load]\nconcurrency = 1\n[length]\nrequests = 1\n'
    )
    monkeypatch.setenv("LLMSURGE_PRESETS_DIR", str(presets))
    async with _static_app().run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("p")
        await pilot.pause(0.3)
        ol = pilot.app.screen.query_one(OptionList)
        labels = [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]
        assert any("is a folder" in x for x in labels) and any("not UTF-8" in x for x in labels)
        assert any("mine[/b]" in x and "[bold red]x[/]" in x for x in labels)


# ---- sizes: 80×24 and up ------------------------------------------------------------------------------------

SIZES = [(80, 24), (100, 30), (120, 40), (160, 48), (200, 60)]


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_snapshot_sizes(snap_compare: Callable[..., bool], no_user_presets: None, size: tuple[int, int]) -> None:
    async def ready(pilot: object) -> None:
        await _settle(pilot)

    assert snap_compare(_static_app(), terminal_size=size, run_before=ready)


def _screen_lines(svg: str) -> list[str]:
    """The text of an SVG screenshot, line by line (Textual writes one <text> per styled run)."""
    import html
    import re

    cell = 12.2  # Textual's SVG: one cell is 12.2 units across; a run of plain spaces is not written, so each run
    runs: dict[float, list[tuple[float, str]]] = {}  # is placed at its column, the gaps filled with spaces
    for m in re.finditer(r'<text[^>]*\sx="([\d.]+)"[^>]*\sy="([\d.]+)"[^>]*>(.*?)</text>', svg):
        x, y, text = float(m.group(1)), float(m.group(2)), html.unescape(m.group(3)).replace("\xa0", " ")
        runs.setdefault(y, []).append((x, text))
    lines = []
    for _y, parts in sorted(runs.items()):
        line = ""
        for x, text in sorted(parts):
            line = line.ljust(round(x / cell)) + text
        lines.append(line)
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_no_number_is_cut_at_any_size(no_user_presets: None, size: tuple[int, int]) -> None:
    """Every pane drops a column, abbreviates or moves to a tab rather than cut a number with an ellipsis."""
    import re

    app = _static_app()
    async with app.run_test(size=size) as pilot:
        await _settle(pilot)
        lines = _screen_lines(app.export_screenshot())
        if size == (80, 24):  # the compact screen: every pane, one at a time
            for key in "12345678":
                await pilot.press(key)
                await pilot.pause(0.2)
                app.refresh_panes(full=True)
                await pilot.pause(0.3)
                lines += _screen_lines(app.export_screenshot())
    assert len(lines) >= size[1] - 2
    cut = [line for line in lines if re.search(r"\d[\d,.]*…", line)]
    assert not cut, cut


@pytest.mark.slow
async def test_resizing_switches_layouts_live_and_z_zooms_a_pane(
    sim_url: str, tmp_path: Path, no_user_presets: None
) -> None:
    """A running app (real sim, real sockets) resized across every size class keeps drawing and keeps running."""
    from llmsurge.tui.screens.compact import CompactScreen
    from llmsurge.tui.screens.main import MainScreen
    from llmsurge.widgets.segments_table import SegmentsTable

    app = make_app(_config(sim_url, tmp_path))
    async with app.run_test(size=(160, 48)) as pilot:
        bus = app.session.bus
        await _until(pilot, lambda: bus.finished_total >= 2)
        assert isinstance(app.screen, MainScreen)
        for w, h in [*SIZES, *reversed(SIZES)]:
            done, frames = bus.finished_total, app.frames
            await pilot.resize_terminal(w, h)
            await _until(pilot, lambda d=done, f=frames: bus.finished_total > d and app.frames > f + 2)
            assert isinstance(app.screen, CompactScreen if (w, h) == (80, 24) else MainScreen), (w, h)
            assert app.screen.ready
            shown = re.search(r"\bdone\s+([\d,]+)", "\n".join(_screen_lines(app.export_screenshot())))
            assert shown and int(shown.group(1).replace(",", "")) >= done > 0, (w, h)  # live numbers on screen
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.4)
        await pilot.press("4")  # the compact screen: the segments pane fills the main area
        await pilot.pause(0.3)
        compact = app.screen
        assert isinstance(compact, CompactScreen) and compact.current == "segments"
        assert compact.query_one(SegmentsTable).display
        await pilot.resize_terminal(160, 48)
        await pilot.pause(0.4)
        main = app.screen
        assert isinstance(main, MainScreen)
        main.query_one(SegmentsTable).focus()
        await pilot.press("z")
        await pilot.pause(0.2)
        assert main.maximized is main.query_one(SegmentsTable)
        await pilot.press("z")
        await pilot.pause(0.2)
        assert main.maximized is None
        await pilot.press("tab")  # focus moves between panes
        assert app.focused is not None and app.focused is not main.query_one(SegmentsTable)
        assert "zoom" in app.screen.active_bindings["z"].binding.description
        await pilot.press("q")  # stop the run: its worker and simulated server end with it
        await _until(pilot, lambda: not app.is_running)


@pytest.mark.slow
async def test_mouse_focuses_panes_scrolls_the_stream_and_opens_a_row(no_user_presets: None) -> None:
    from llmsurge.metrics.records import RequestRecord
    from llmsurge.tui.screens.inspector import InspectorScreen
    from llmsurge.widgets.request_stream import RequestStream
    from llmsurge.widgets.segments_table import SegmentsTable

    snap = seeded_snapshot()
    records: dict[str, RequestRecord] = {}
    cfg = RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000")
    app = make_app(cfg, snapshot_source=lambda: snap, records=records)
    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(pilot)
        segments = app.screen.query_one(SegmentsTable)
        await pilot.click(SegmentsTable)
        assert app.focused is segments
        stream = app.screen.query_one(RequestStream)
        await pilot.click(RequestStream, offset=(10, 3))  # border, header, first row, second row
        assert app.focused is stream and stream.selected == stream.rows[1].request_id
        picked = stream.rows[1].request_id
        records[picked] = RequestRecord(picked, 0, 0, 0.0, 0.0, ttft=0.05, e2el=1.0, output_tokens=8)
        assert stream.scroll_offset.y == 0
        stream.scroll_down(animate=False)
        await pilot.pause(0.1)
        assert stream.scroll_offset.y > 0  # the wheel's action scrolls the rows
        stream.scroll_home(animate=False)
        await pilot.pause(0.1)
        await pilot.double_click(RequestStream, offset=(10, 3))  # a double click opens the row
        await _until(pilot, lambda: isinstance(app.screen, InspectorScreen))
        inspector = app.screen
        assert isinstance(inspector, InspectorScreen) and inspector.rec.request_id == picked
        await pilot.press("escape")
        await _until(pilot, lambda: not isinstance(app.screen, InspectorScreen))
        app.screen.query_one(RequestStream).focus()
        await pilot.press("enter")  # and so does enter on the selected row
        await _until(pilot, lambda: isinstance(app.screen, InspectorScreen))


def test_ticks_are_nice_and_fit() -> None:
    from llmsurge.widgets.pane_plot import nice_ticks

    for lo, hi, most in [(0, 60, 8), (23, 71, 3), (0.0, 1.0, 5), (1000, 1e6, 4), (40, 41, 6)]:
        ticks = nice_ticks(lo, hi, most)
        assert 1 <= len(ticks) <= most and all(lo <= t <= hi for t in ticks), (lo, hi, ticks)
        steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
        assert len(steps) <= 1
        if steps:
            step = steps.pop()
            mantissa = step / 10 ** math.floor(math.log10(step))
            assert round(mantissa, 6) in (1.0, 2.0, 5.0), (lo, hi, ticks)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_axis_labels_never_run_together(no_user_presets: None, size: tuple[int, int]) -> None:
    """Each chart's x-axis line holds its tick labels as separate words, never two run into one ("2530")."""
    from textual_hires_canvas import Canvas

    from llmsurge.widgets.pane_plot import PanePlot

    app = _static_app()
    async with app.run_test(size=size) as pilot:
        await _settle(pilot)
        seen = 0
        for key in "12" if size == (80, 24) else "_":
            if key != "_":
                await pilot.press(key)
                await pilot.pause(0.2)
                app.refresh_panes(full=True)
                await pilot.pause(0.3)
            for plot in app.screen.query(PanePlot):
                if not plot.display or plot.size.width == 0 or plot._x_ticks is None:
                    continue
                words = plot.query_one("#margin-bottom", Canvas).render_line(0).text.split()
                labels = {f"{t:g}" for t in plot._x_ticks}
                assert words and all(w in labels for w in words), (size, words, labels)
                seen += 1
        assert seen >= (1 if size == (80, 24) else 2)


@pytest.mark.slow
async def test_theme_from_the_palette_recolours_the_panes(no_user_presets: None) -> None:
    from llmsurge.widgets.load_panel import LoadPanel

    app = _static_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(pilot)
        dark = app.screen.query_one(LoadPanel).role("muted")
        await palette(pilot, "theme")  # the theme list
        from textual.command import CommandInput, CommandList

        screen = app.screen
        await pilot.press(*"textual-light")
        await _until(pilot, lambda: screen.query_one(CommandInput).value == "textual-light")
        await _until(pilot, lambda: screen.query_one(CommandList).highlighted is not None)
        await pilot.press("enter")
        await _until(pilot, lambda: app.theme == "textual-light")
        await _settle(pilot)
        assert app.screen.query_one(LoadPanel).role("muted") != dark  # colours come from the theme


def test_snapshot_light_theme(snap_compare: Callable[..., bool], no_user_presets: None) -> None:
    async def light(pilot: Any) -> None:
        pilot.app.theme = "textual-light"
        await _settle(pilot)
        await _settle(pilot)  # every pane drawn again once the theme has reached them all

    assert snap_compare(_static_app(), terminal_size=SIZE, run_before=light)


async def test_the_histogram_counts_in_whole_requests_and_a_far_slo_does_not_squeeze_it(
    no_user_presets: None,
) -> None:
    import dataclasses

    from llmsurge.metrics.slo import parse_slo
    from llmsurge.widgets.pane_plot import PanePlot
    from llmsurge.widgets.ttft_histogram import TtftHistogram

    edges = tuple(40.0 + i for i in range(9))  # 8 bins between 40 and 48 ms, two requests at most in one
    snap = dataclasses.replace(seeded_snapshot(), ttft_hist=(edges, (1, 0, 2, 1, 0, 0, 1, 1)), slo=parse_slo("ttft=5s"))
    app = make_app(RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000"), snapshot_source=lambda: snap)
    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(pilot)
        hist = app.screen.query_one(TtftHistogram)
        plot = hist.query_one(PanePlot)
        assert all(float(t).is_integer() for t in plot._y_ticks or []), plot._y_ticks  # no tick at 0.5 requests
        assert plot._x_max < 100  # the 5 s SLO is named, not drawn 100 times to the right of the bars
        assert "SLO 5,000 →" in _plain(hist.query_one("#ttft-marks").content)


@pytest.mark.parametrize("size", [(100, 30), (120, 40), (160, 48)])
async def test_quit_shows_and_every_pane_keeps_its_bottom_border(no_user_presets: None, size: tuple[int, int]) -> None:
    app = _static_app()
    async with app.run_test(size=size) as pilot:
        await _settle(pilot)
        lines = _screen_lines(app.export_screenshot())
    assert "q quit" in lines[-1]  # the footer cuts from the right: quit comes early
    above = lines[-2]
    assert above.startswith("╰") and above.rstrip().endswith("╯"), above  # the bottom panes close above it


async def test_a_number_fills_the_dashboard_with_that_pane_and_escape_brings_it_back(no_user_presets: None) -> None:
    app = _static_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(pilot)
        screen = app.screen
        await pilot.press("2")
        await _until(pilot, lambda: screen.maximized is not None and screen.maximized.id == "ttft")
        await pilot.press("5")
        await _until(pilot, lambda: screen.maximized is not None and screen.maximized.id == "requests")
        await pilot.press("escape")
        await _until(pilot, lambda: screen.maximized is None)


# ---- every pane framed at every size, tab and zoom -----------------------------------------------------------

FRAME_SIZES = [(80, 24), (100, 30), (120, 40), (160, 48), (240, 64)]


def _long_app() -> LLMSurgeApp:
    """The seeded snapshot four and three-quarter minutes in: the rate chart's newest point is at 284 s."""
    import dataclasses
    import random

    base = seeded_snapshot()
    rng = random.Random(5)
    history = tuple((float(t), 500.0 + 3 * t + rng.random() * 40, 4.0 + rng.random()) for t in range(285))
    snap = dataclasses.replace(base, history=history, elapsed=284.0, segment_starts=(0.0, 100.0, 200.0))
    cfg = RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000")
    return make_app(cfg, snapshot_source=lambda: snap)


def _cells(app: LLMSurgeApp) -> list[str]:
    """The screen as the terminal shows it: one string per row, one character per cell (wide glyphs aside)."""
    strips = app.screen._compositor.render_strips()
    return ["".join(segment.text for segment in strip) for strip in strips]


def _frame_problems(lines: list[str], widget: Any, width: int, height: int, where: str) -> list[str]:
    """What is wrong with a pane's frame on screen: outside the screen, or a corner or edge drawn over."""
    r = widget.region
    name = f"{where}: {widget.id} {r}"
    if r.width < 3 or r.height < 2:
        return [f"{name}: no room"]
    if r.x < 0 or r.y < 0 or r.right > width or r.bottom > height:
        return [f"{name}: outside the screen"]
    grid = [line.ljust(width) for line in lines]
    top, bottom = grid[r.y], grid[r.bottom - 1]
    problems = []
    corners = {
        "top-left": (top[r.x], "╭"),
        "top-right": (top[r.right - 1], "╮"),
        "bottom-left": (bottom[r.x], "╰"),
        "bottom-right": (bottom[r.right - 1], "╯"),
    }
    problems += [f"{name}: {k} is {got!r}" for k, (got, want) in corners.items() if got != want]
    for y in range(r.y + 1, r.bottom - 1):  # the side edges: nothing drawn over them
        if grid[y][r.x] != "│" or grid[y][r.right - 1] != "│":
            problems.append(f"{name}: side edge broken on row {y}: {grid[y][r.x]!r} {grid[y][r.right - 1]!r}")
            break
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("size", FRAME_SIZES, ids=[f"{w}x{h}" for w, h in FRAME_SIZES])
async def test_every_pane_keeps_its_frame_at_every_size_tab_and_zoom(
    no_user_presets: None, size: tuple[int, int]
) -> None:
    """At each size: the dashboard (or the compact screen's every tab), then every pane zoomed. No pane draws
    outside its region or over its frame, the rate chart's newest second is in view, and what the layout promises
    is on screen: quit in the footer, TTFT on the first screen, p99 in the histogram's legend."""
    from llmsurge.tui.screens.compact import CompactScreen
    from llmsurge.tui.screens.dashboard import PANES
    from llmsurge.widgets.pane_plot import PanePlot

    width, height = size
    app = _long_app()
    problems: list[str] = []
    async with app.run_test(size=size) as pilot:
        await _settle(pilot)
        screen = app.screen
        compact = isinstance(screen, CompactScreen)
        first = _cells(app)
        assert len(first) == height and "q quit" in first[-1], first[-1]
        assert "TTFT" in "\n".join(first)  # at a glance, whatever the size
        if not compact:
            assert re.search(r"p99 [\d,.]+ ms", "\n".join(first)), "the histogram legend keeps p99"

        def visible_panes() -> list[Any]:
            return [w for pid, _t, _c in PANES if (w := screen.query_one(f"#{pid}")).display and w.region.area]

        views = [("first", None), *((f"pane {i} ({pid})", str(i)) for i, (pid, _t, _c) in enumerate(PANES, 1))]
        for where, key in views:
            if key is not None:
                await pilot.press(key)
                await pilot.pause(0.2)
                app.refresh_panes(full=True)
                await pilot.pause(0.3)
            lines = _cells(app)
            shown = visible_panes() if (compact or key is None) else [screen.maximized]
            assert shown and all(w is not None for w in shown), where
            for w in shown:
                problems += _frame_problems(lines, w, width, height, where)
            rate = screen.query_one("#rate")
            if rate in shown:
                plot = rate.query_one(PanePlot)
                assert plot._x_max >= 284 - 0.5, (where, plot._x_max)  # the newest second is in view
            if key is not None and not compact:
                await pilot.press("escape")
                await _until(pilot, lambda: screen.maximized is None)
    assert not problems, "\n".join(problems)


async def test_a_wide_gpu_pane_shows_the_segments_mean_and_peak(no_user_presets: None) -> None:
    app = _long_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(pilot)
        narrow = "\n".join(_cells(app))
        await pilot.press("6")  # the GPU pane fills the dashboard
        await _until(pilot, lambda: app.screen.maximized is not None)
        app.refresh_panes(full=True)
        await pilot.pause(0.3)
        wide = "\n".join(_cells(app))
    assert "seg avg 55 pk 71%" in wide and "avg 380 pk 455W" in wide
    assert "62%" in narrow and "410/700W" in narrow  # the current values, whatever the room


async def test_the_events_pane_keeps_events_follows_stops_when_scrolled_up_and_copies(no_user_presets: None) -> None:
    """Events outlive their toasts: kept in order with their level, followed at the bottom, left alone when the
    user has scrolled up to read one, and copied whole with y."""
    import dataclasses

    from llmsurge.metrics.bus import RunEvent
    from llmsurge.widgets.events_pane import EventsPane

    base = seeded_snapshot()
    events: list[RunEvent] = []
    cfg = RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000")
    app = make_app(cfg, snapshot_source=lambda: dataclasses.replace(base, events=tuple(events[-20:])))

    def add(n: int) -> None:
        start = len(events)
        for i in range(start, start + n):
            level = ("info", "warning", "error")[i % 3]
            events.append(RunEvent(seq=i + 1, time=float(i), level=level, message=f"event number {i + 1}"))

    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(pilot)
        await pilot.press("9")  # the events pane fills the dashboard
        pane = app.screen.query_one(EventsPane)
        await _until(pilot, lambda: app.screen.maximized is pane)
        assert pane.border_subtitle == "no events yet"
        for _ in range(4):  # more events than fit on the screen, a few at a time (a snapshot carries 20)
            add(15)
            app.refresh_panes(full=True)
            await pilot.pause(0.1)
        await _until(pilot, lambda: len(pane.lines) == 60 and pane.max_scroll_y > 0)
        text = "\n".join(_cells(app))
        assert "event number 60" in text and "error" in text  # following: the newest is in view
        assert pane.scroll_y == pane.max_scroll_y
        pane.scroll_to(y=0, animate=False)
        await pilot.pause(0.1)
        add(5)
        app.refresh_panes(full=True)
        await _until(pilot, lambda: len(pane.lines) == 65)
        assert pane.scroll_y == 0  # scrolled up to read: not pulled down
        assert re.search(r"event number 1\b", "\n".join(_cells(app)))  # the oldest, where the user scrolled to
        pane.focus()
        await pilot.press("y")
        await _until(pilot, lambda: app.clipboard.count("\n") == 65)
        assert app.clipboard.splitlines()[0].endswith("info    event number 1")
        assert app.clipboard.splitlines()[-1].endswith("warning event number 65")


@pytest.mark.slow
async def test_a_zoomed_host_pane_shows_each_worker(sim_url: str, tmp_path: Path, no_user_presets: None) -> None:
    """Per worker: state, in flight, done, failed, CPU and loop lag — the rows add up to the run's counts."""
    import dataclasses

    from llmsurge.widgets.telemetry_panes import HostPane

    cfg = dataclasses.replace(_config(sim_url, tmp_path, concurrency=4), workers=2)
    app = make_app(cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        bus = app.session.bus
        await _until(pilot, lambda: bus.finished_total >= 8 and len(bus.view().worker_rows) == 2, 60)
        await pilot.press("8")  # the host pane fills the dashboard
        pane = app.screen.query_one(HostPane)
        await _until(pilot, lambda: app.screen.maximized is pane)

        def table() -> list[str]:
            app.refresh_panes(full=True)
            return [line for line in _cells(app) if re.search(r"│\s*w[01]\s", line)]

        await _until(pilot, lambda: len(table()) == 2, 30)
        header = next(line for line in _cells(app) if "in flight" in line and "loop lag" in line)
        assert "state" in header and "done" in header and "failed" in header and "cpu" in header
        view = bus.view()  # one view: a request that ends between two would count in one and not the other
        rows = view.worker_rows
        assert [r.state for r in rows] == ["running", "running"] and all(r.done > 0 for r in rows)
        assert sum(r.done for r in rows) == view.warmup_done + sum(s.ok for s in view.segments)
        await pilot.press("q")
        await _until(pilot, lambda: not app.is_running, 60)


async def test_the_latency_pane_says_when_itl_counts_bunched_chunks() -> None:
    """ITL p50 0.00 beside TPOT 7.8 ms: the server wrote several chunks per send. The pane says so, and which
    figure is per token."""
    import dataclasses

    snap = seeded_snapshot()
    bunched = dataclasses.replace(
        snap, segment_figures=dataclasses.replace(snap.segment_figures, itl_bunched_share=0.62)
    )
    for data, said in ((snap, False), (bunched, True)):
        app = make_app(RunConfig(scenario=find_preset("demo")), snapshot_source=lambda s=data: s)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            app.refresh_panes(True)
            await pilot.pause()
            screen = "\n".join(_cells(app))
            assert ("ITL†" in screen and "62% of gaps < 0.1 ms" in screen and "per token: TPOT" in screen) == said


async def test_a_refresh_while_the_app_closes_is_a_no_op() -> None:
    """The refresh interval can fire once more while the app closes and its screen stack is empty: nothing to draw,
    no error (it ended a test run with ScreenStackError)."""
    snap = seeded_snapshot()
    app = make_app(RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000"), snapshot_source=lambda: snap)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(pilot)
        frames = app.frames
        app.refresh_panes(True)
        assert app.frames == frames + 1  # drawn while a dashboard is up
        assert gc.get_freeze_count() > 0  # start-up's objects, out of the collector's view while the app runs
    assert not app.screen_stack and gc.get_freeze_count() == 0  # handed back when it leaves
    app.refresh_panes(True)  # after the close: nothing to draw, nothing raised
    assert app.frames == frames + 1


def test_the_load_panels_rows_draw_as_the_rich_grid_did_at_every_width() -> None:
    """The load panel draws its rows itself (a rich grid cost ~10 ms a frame); segment for segment, at every width,
    they are what the grid draws: cut values end in an ellipsis, wide characters count double."""
    import random

    from rich.console import Console, Group
    from rich.style import Style
    from rich.text import Text

    from llmsurge.widgets.load_panel import Rows

    values = [
        Text("c=8", style="bold"),
        "1,000",
        Text("timeout:12 reset:3 protocol:5 connect:9", style=Style(color="red")),
        Text(""),
        Text.assemble(("p99 ", "bold"), ("12 ms", "red")),
        Text("34% 1.25/s", style="green"),
        "日本語の値です",
    ]
    labels = ["target", "in flight", "output tok/s", "TTFT p50/p99", "a label too long to fit", "x"]
    rng = random.Random(3)
    for width in range(1, 61):
        rows = Rows(Style(color="grey50"))
        for _ in range(rng.randint(1, 8)):
            rows.add_row(rng.choice(labels), rng.choice(values))
        console = Console(width=width, color_system="truecolor", force_terminal=True)
        for note in (None, Text("SATURATED: the reason, wrapped", style="yellow")):
            rows.note = note
            grid = rows.grid() if note is None else Group(rows.grid(), note)
            assert list(console.render(rows)) == list(console.render(grid)), width
    # Equal rows are not drawn again (the panel's text changes about once a second, frames come ten times as often)
    a, b = Rows(Style(color="grey50")), Rows(Style(color="grey50"))
    for rows in (a, b):
        rows.add_row("in flight", "1,000")
        rows.add_row("failed", Text("3", style="red"))
    assert a == b
    b.note = Text("SATURATED", style="yellow")
    assert a != b
    a.note = Text("SATURATED", style="red")
    assert a != b  # the same words in another colour
    a.note = Text("SATURATED", style="yellow")
    assert a == b
    b.rows[1] = ("failed", Text("3"))
    assert a != b


def test_the_request_streams_rows_draw_as_rich_text_did_at_every_width() -> None:
    """The request stream builds each row's segments itself (formatting and rendering a rich Text cost ~10 ms a
    frame); segment for segment, at every width, scroll and selection, they are what that Text drew on the pane."""
    from rich.console import Console
    from rich.style import Style
    from textual.strip import Strip

    from llmsurge.metrics.snapshot import RequestRow
    from llmsurge.widgets.request_stream import columns_for, format_row, row_strip

    def reference(row: RequestRow, columns, styles, base, width, scroll_x, selected) -> Strip:  # type: ignore[no-untyped-def]
        line = format_row(row, styles, columns)
        strip = Strip(list(line.render(console)), line.cell_len).crop(scroll_x, scroll_x + width)
        strip = strip.extend_cell_length(width).apply_style(base)
        return strip.apply_style(Style(reverse=True)) if selected else strip

    console = Console(width=200, color_system="truecolor", force_terminal=True)
    fields = ("request_id", "segment", "status", "ttft_ms", "output_tokens", "tokens_per_s", "latency_ms", "error_kind")
    rows = [
        RequestRow(**dict(zip(fields, values, strict=True)))  # type: ignore[arg-type]
        for values in (
            (("r-000123", 1, "running", 41.5, 12, 310.0, 812.0, "")),
            (("r-7", 2, "ok", 12.25, 4096, 1250.5, 3_600_000.0, "")),
            (("r-8", 12, "failed", None, 0, None, 30_000.0, "timeout")),
            (("r-9", 3, "cancelled", 9.0, 3, 2.0, 5.0, "a very long error kind")),
            (("请求-日本語", 4, "ok", 1.0, 1, 1.0, 1.0, "")),  # wide characters count double
            (("r-10", 5, "unknown", 1.0, 1, 1.0, 1.0, "x")),  # a status with no role: no span of its own
        )
    ]
    themes = [
        {
            "good": Style(color="green"),
            "bad": Style(color="red", bold=True),
            "warn": Style(color="yellow"),
            "accent": Style(color="cyan"),
        },
        {},  # no roles at all: the whole line is one unstyled run
        {"bad": Style(color="red"), "good": Style(color="red")},  # equal styles side by side stay two segments
    ]
    bases = [Style(color="white", bgcolor="black"), Style(bgcolor="#101010", italic=True)]  # never null: a pane's
    for width in range(0, 90):
        columns = columns_for(max(0, width - 1))
        for row in rows:
            for styles in themes:
                for base in bases:
                    for scroll_x in (0, 3) if width % 7 == 0 else (0,):
                        for selected in (False, True):
                            ours = row_strip(row, columns, styles, base, width, scroll_x, selected)
                            theirs = reference(row, columns, styles, base, width, scroll_x, selected)
                            assert list(ours) == list(theirs), (width, row.request_id, scroll_x, selected)
                            assert ours.cell_length == theirs.cell_length


def test_a_pane_is_drawn_again_only_when_its_text_changed_and_reflowed_only_when_its_height_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """update_static: the same text is not drawn again; a pane whose height the CSS sets is never reflowed; one
    whose height follows its content grows at once, keeps the height it had while a shorter text is shown for less
    than HOLD_S (padded with blank lines, nothing below it moves), then shrinks; drawn from the lines it rendered,
    it looks as the text itself does, and is rendered again at another width."""
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text
    from textual.app import App, ComposeResult
    from textual.containers import Vertical
    from textual.widgets import Static

    import llmsurge.widgets.pane as pane
    from llmsurge.widgets.pane import Rendered, update_static

    class Panes(App[None]):
        CSS = "#auto { height: auto; } #fixed { height: 3; } #below { height: 1; }"

        def compose(self) -> ComposeResult:
            with Vertical():
                yield Static(id="auto")
                yield Static(id="below")
                yield Static(id="fixed")

    def lines(n: int) -> Group:
        t = Table.grid()
        t.add_column()
        for i in range(n):
            t.add_row(f"row {i}")
        return Group(t, Text("a note that wraps " * 3, style="bold"))

    async def run() -> None:
        app = Panes()
        async with app.run_test(size=(30, 20)) as pilot:
            auto, below, fixed = (app.query_one(f"#{i}", Static) for i in ("auto", "below", "fixed"))
            refreshes: list[bool] = []
            real = fixed.refresh
            monkeypatch.setattr(
                fixed, "refresh", lambda *a, **k: refreshes.append(k.get("layout", False)) or real(*a, **k)
            )
            update_static(fixed, Text("one", style="red"))
            update_static(fixed, Text("one", style="red"))  # the same: not drawn again
            update_static(fixed, Text("one", style="blue"))  # the same words in another colour: drawn
            assert refreshes == [False, False]  # drawn twice, never a reflow

            update_static(auto, lines(2))  # the first layout measures it
            await _until(pilot, lambda: auto.size.height == 4)  # 2 rows and the note, wrapped at 30 cells
            update_static(auto, lines(5))
            await _until(pilot, lambda: auto.size.height == 7 and below.region.y == 7)  # grew at once
            update_static(auto, lines(3))  # shorter, within the hold: the height it had, padded
            await pilot.pause()
            assert auto.size.height == 7 and below.region.y == 7
            assert isinstance(auto.content, Rendered) and len(auto.content.lines) == 7  # 5 lines and 2 blank
            monkeypatch.setattr(pane, "HOLD_S", 0.0)
            update_static(auto, lines(1))  # shorter for longer than the hold: it shrinks
            await _until(pilot, lambda: auto.size.height == 3 and below.region.y == 3)

    asyncio.run(run())

    console = Console(width=30, color_system="truecolor", force_terminal=True)
    content = lines(4)
    drawn = Rendered(content, 30, console.render_lines(content, console.options.update_width(30), pad=False))
    for width in (30, 17):
        options = console.options.update_width(width)
        assert console.render_lines(drawn, options, pad=False) == console.render_lines(content, options, pad=False)


async def test_new_statistics_are_drawn_over_the_next_frames_and_at_once_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recomputed statistics are drawn one group of panes per frame (all at once cost a busy host's UI thread
    several frames), each from its frame's snapshot; the first statistics, and a refresh a key asks for, draw every
    pane at once; statistics recomputed while some panes are still owed start the groups over."""
    import dataclasses

    from llmsurge.tui.screens.dashboard import STATISTICS, STATISTICS_BY_FRAME

    current = [seeded_snapshot()]
    cfg = RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000")
    app = LLMSurgeApp(cfg, snapshot_source=lambda: current[0], refresh_hz=0.001)  # frames drawn by the test alone
    drawn: list[tuple[str, object]] = []

    def newer(stats: int = 0) -> None:
        snap = current[0]
        current[0] = dataclasses.replace(snap, elapsed=snap.elapsed + 0.1, stats_version=snap.stats_version + stats)

    def frame(full: bool | None = None) -> dict[str, object]:
        drawn.clear()
        app.refresh_panes(full)
        return dict(drawn)

    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        for pane in app.screen.query("*"):
            if isinstance(pane, STATISTICS) or type(pane).__name__ == "RequestStream":
                show = pane.show  # type: ignore[attr-defined]
                name = type(pane).__name__

                def spy(snap: object, show: Any = show, name: str = name) -> None:
                    drawn.append((name, snap))
                    show(snap)

                monkeypatch.setattr(pane, "show", spy)
        groups = [{cls.__name__ for cls in group} for group in STATISTICS_BY_FRAME]
        everything = {cls.__name__ for cls in STATISTICS}

        newer(stats=1)
        for group in [*groups, set()]:
            shown = frame()
            assert set(shown) - {"RequestStream"} == group  # one group a frame, then none
            assert all(snap is current[0] for snap in shown.values())  # each from this frame's snapshot
            assert "RequestStream" in shown  # the stream follows every frame
            newer()

        newer(stats=1)
        frame()
        assert set(frame(full=True)) - {"RequestStream"} == everything  # asked for: the rest at once
        assert set(frame()) == {"RequestStream"}

        newer(stats=1)
        frame()
        frame()
        newer(stats=1)  # recomputed with three groups owed: from the first again
        assert set(frame()) - {"RequestStream"} == groups[0]
    first = LLMSurgeApp(cfg, snapshot_source=lambda: current[0], refresh_hz=0.001)
    async with first.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = first.screen
        for pane in screen.query("*"):
            if isinstance(pane, STATISTICS):
                name = type(pane).__name__
                monkeypatch.setattr(pane, "show", lambda snap, name=name: drawn.append((name, snap)))
        drawn.clear()
        first._drawn_stats = -1  # as before the first frame
        first.refresh_panes()
        assert {name for name, _ in drawn} == everything  # first sight: every pane at once


def test_the_latency_figures_draw_as_the_rich_table_did_at_every_width() -> None:
    """The latency pane draws its table itself (a rich table cost ~10 ms of a frame with new statistics); segment for
    segment, at every width, it is what ``Table(expand=True, box=None, padding=(0, 1))`` draws: muted and starred
    cells, dashes, wide characters, a caption; too narrow for its columns, it is that table."""
    import random

    from rich.console import Console
    from rich.style import Style
    from rich.text import Text

    from llmsurge.widgets.latency_table import Figures

    strong, muted = Style(bold=True, color="white"), Style(color="grey50")
    cells = [
        Text("12.3"),
        Text("1,234.5*", style=muted),
        Text("—"),
        Text("3k", style=muted),
        Text(""),
        Text("日本", style="red"),
        Text.assemble(("9", "bold"), ("0.1", "green")),
    ]
    rng = random.Random(5)
    for width in range(1, 121):
        for caption in (None, Text("† per chunk: 62% of gaps < 0.1 ms; per token: TPOT", muted)):
            ncols = rng.randint(1, 11)
            fig = Figures(
                ["ms", *(rng.choice(["seg p50", "p90", "n", "mean", "run p50"]) for _ in range(ncols))], strong, strong
            )
            for label in rng.sample(["TTFT", "TTFC", "TPOT", "ITL†", "E2EL"], rng.randint(1, 5)):
                fig.add_row(Text(label), *(rng.choice(cells) for _ in range(ncols)))
            fig.caption = caption
            console = Console(width=width, color_system="truecolor", force_terminal=True)
            assert list(console.render(fig)) == list(console.render(fig.table())), (width, ncols)
    a, b = (Figures(["ms", "p50"], strong, strong) for _ in range(2))
    for fig in (a, b):
        fig.add_row(Text("TTFT"), Text("12.3"))
    assert a == b  # the same figures are not drawn again
    b.rows[0][1] = Text("12.3", style=muted)
    assert a != b  # the same words in another style
    b.rows[0][1] = Text("12.3")
    b.caption = Text("† note")
    assert a != b


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 48), (240, 64)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_footer_fits_its_width_and_the_latency_pane_is_titled_for_what_it_shows(
    no_user_presets: None, size: tuple[int, int]
) -> None:
    """A narrow footer keeps what matters and is never cut (the compact screen's names its arrows); a wide one
    says more. The latency pane shows the run's columns where they fit, and its title says which it shows."""
    app = _static_app()
    async with app.run_test(size=size) as pilot:
        await _settle(pilot)
        lines = _screen_lines(app.export_screenshot())
        footer = lines[-1]
        assert "q quit" in footer and "^p palette" in footer and "…" not in footer, footer
        assert len(footer.rstrip()) <= size[0]
        if size[0] < 100:
            assert "1-9 ←/→ panes" in footer, footer
            return
        title = next(line for line in lines if "latency (ms)" in line)
        header = next(line for line in lines if "seg p50" in line)
        if size[0] >= 160:
            assert "segment | run" in title and "run p50" in header, (title, header)
        else:
            assert "this segment" in title and "run p50" not in header, (title, header)
        assert ("one more" in footer) == (size[0] >= 220), footer
        assert ("- -1" in footer or "one fewer" in footer) == (size[0] >= 120), footer


@pytest.mark.parametrize("size", [(80, 24), (160, 48), (240, 64)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_load_pane_fills_its_height(no_user_presets: None, size: tuple[int, int]) -> None:
    """The load pane is as tall as the charts beside it: it fills that height with figures, not blank rows."""
    app = _static_app()
    async with app.run_test(size=size) as pilot:
        await _settle(pilot)
        lines = _screen_lines(app.export_screenshot())
    top = next(i for i, line in enumerate(lines) if line.startswith("╭─ load"))
    bottom = next(i for i in range(top + 1, len(lines)) if lines[i].startswith("╰"))
    inside = [line[1 : line.index("│", 1)] for line in lines[top + 1 : bottom]]
    blank = [row for row in inside if not row.strip()]
    assert len(inside) >= 10 and len(blank) <= max(2, len(inside) // 3), inside  # (it kept 11–13 blank rows)

"""What every endpoint shares: check says which a server offers, the TUI shows what each measures, a flag for another
endpoint is refused, and several models or servers share one load. Each endpoint's own tests are beside its module:
``tests/endpoints/test_NAME.py`` for ``llmsurge/engine/endpoints/NAME.py``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from llmsurge.engine.session import RunConfig
from llmsurge.net import Target
from llmsurge.presets import find_preset
from llmsurge.tui.app import make_app
from tests.helpers import pilot_until, rows, run_cli, sim_cli, summary


def test_check_says_which_endpoints_and_tools_a_server_offers(sim_url: str) -> None:
    r = run_cli("check", sim_url, "--no-quality", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    said = ("responses: yes", "messages: yes", "embeddings: yes", "rerank: yes", "tool calls: yes (a call with JSON")
    for line in said:
        assert line in r.stdout, r.stdout
    assert "– per-request timings: no (llama.cpp sends them; vLLM with --enable-per-request-metrics)" in r.stdout
    with sim_cli("--request-metrics") as url:  # a server that times each request on its own clock: check says so
        r = run_cli("check", url, "--no-quality", timeout=120)
    assert re.search(r"✓ per-request timings: yes \(vLLM per-request metrics: queue [\d.]+ ms, prefill", r.stdout), (
        r.stdout
    )


@pytest.mark.parametrize(
    ("endpoint", "said", "not_said"),
    [
        ({"endpoint": "embeddings", "batch": 2}, ("inputs/s", "lat. p50/p99"), "TTFT p50/p99"),
        ({"endpoint": "rerank", "documents": 3}, ("inputs/s", "lat. p50/p99"), "TTFT p50/p99"),
        ({"endpoint": "responses"}, ("output tok/s", "TTFT p50/p99"), "inputs/s"),
        ({"endpoint": "chat", "tools": 2}, ("output tok/s", "TTFT p50/p99"), "inputs/s"),
        ({"endpoint": "chat", "images": 1, "image_size": (56, 56)}, ("output tok/s", "TTFT p50/p99"), "inputs/s"),
    ],
    ids=["embeddings", "rerank", "responses", "tools", "images"],
)
async def test_the_tui_shows_what_each_endpoint_measures(
    tmp_path: Path, endpoint: dict[str, Any], said: tuple[str, ...], not_said: str
) -> None:
    scenario = find_preset("demo").with_overrides(input_tokens=32, output_tokens=8, concurrency=2, **endpoint)
    app = make_app(RunConfig(scenario=scenario, output=tmp_path / "t", keep_alive=True))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_until(pilot, lambda: app.snapshots.snapshot().segment_figures["e2el"].n >= 4, 60)
        app.refresh_panes(True)
        await pilot.pause()
        load = app.screen.query_one("#load")
        text = "\n".join(line.text for line in load.render_lines(load.region.reset_offset))  # type: ignore[attr-defined]
        assert all(s in text for s in said) and not_said not in text, text
        assert app.snapshots.snapshot().failed == 0
        await pilot.press("q")


def test_several_models_are_spread_and_reported_each(tmp_path: Path) -> None:
    """``--model a,b,c`` against a server with adapters: each request takes the next model; summary.json, the
    headless tables and compare show each model's figures."""
    from llmsurge.metrics.compare import compare
    from llmsurge.metrics.runs import load_run
    from llmsurge.sim.process import SimProcess
    from llmsurge.sim.server import SimConfig
    from tests.conftest import quick_timing

    with SimProcess(SimConfig(timing=quick_timing(), adapters=("lora-a", "lora-b"))) as sim:
        out = tmp_path / "m"
        models = "llmsurge-sim,lora-a,lora-b"
        r = run_cli("run", sim.url, "--model", models, "-c", "3", "-n", "30", "--output-tokens", "6", "-o", str(out))
        assert r.returncode == 0, r.stderr
        bad = run_cli("run", sim.url, "--model", "llmsurge-sim,nope", "-n", "2", "-o", str(tmp_path / "x"))
    s = summary(out)
    assert set(s["models"]) == {"llmsurge-sim", "lora-a", "lora-b"}
    assert all(m["completed"] == 10 and m["failed"] == 0 and m["n_ttft"] == 10 for m in s["models"].values())
    assert {q["model"] for q in rows(out, warmup=False)} == set(s["models"])
    assert "per model" in r.stdout and "lora-b" in r.stdout
    assert bad.returncode == 2 and "does not list nope" in bad.stderr
    cmp = compare([load_run(str(out)), load_run(str(out))])
    level = next(lv for lv in cmp.levels if lv.load.startswith("per model"))
    assert {row.metric.label for row in level.rows} >= {"lora-a TTFT p50", "lora-b failed"}


def test_replicas_share_the_load_and_a_failing_one_is_named(tmp_path: Path) -> None:
    """Two servers, one failing a third of its requests: round-robin gives each half the load; the failures are
    counted against the one that failed them."""
    from llmsurge.sim.process import SimProcess
    from llmsurge.sim.server import Faults, SimConfig
    from tests.conftest import quick_timing

    with (
        SimProcess(SimConfig(timing=quick_timing())) as good,
        SimProcess(SimConfig(timing=quick_timing(), faults=Faults.parse("http500=0.34"))) as bad,
    ):
        out = tmp_path / "r"
        targets = tmp_path / "targets.txt"
        targets.write_text(f"# the second replica\n{bad.url}\n")
        r = run_cli("run", good.url, "--targets", str(targets), "-c", "4", "-n", "60", "-o", str(out))
        assert r.returncode in (0, 1), r.stderr
    s = summary(out)
    t = s["targets"]
    assert set(t) == {good.url, bad.url} and s["config"]["replicas"] == [bad.url]
    assert t[good.url]["failed"] == 0 and t[good.url]["completed"] == 30
    assert t[bad.url]["failed"] > 0 and t[bad.url]["completed"] + t[bad.url]["failed"] == 30
    assert t[bad.url]["errors"] == {"http_500": t[bad.url]["failed"]}
    assert "per server" in r.stdout


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--endpoint", "embeddings", "--tools", "2"), "--tools applies to --endpoint chat"),
        (("--batch", "4"), "--batch applies to --endpoint embeddings"),
        (("--endpoint", "chat", "--documents", "3"), "--documents applies to --endpoint rerank"),
        (("--image-size", "64x64"), "--image-size sizes the images of --images N"),
    ],
)
def test_a_flag_for_another_endpoint_is_one_line_not_ignored(flags: tuple[str, ...], said: str) -> None:
    r = run_cli("run", *flags, timeout=60)
    assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_least_busy_goes_to_the_idle_server_and_ties_take_turns() -> None:
    """``--balance least``: each request to the server with the fewest of this worker's requests in flight; among
    equals, each in turn (not always the first); ``rr``: each in turn whatever is in flight."""
    from llmsurge.engine.prompts import Calibration
    from llmsurge.engine.worker import Worker, WorkerSpec

    servers = tuple(Target(f"http://127.0.0.1:{port}", "m") for port in (8001, 8002, 8003))

    def worker(balance: str) -> Worker:
        spec = WorkerSpec(0, servers[0], Calibration(), replicas=servers[1:], balance=balance)
        return Worker(spec, None, [], None)  # type: ignore[arg-type]  # no commands, ticks or tickets needed

    least = worker("least")
    least.target_inflight = [2, 0, 1]
    assert least._pick_target() == 1
    least.target_inflight = [1, 1, 1]  # all equal, several times: each server in turn
    assert [least._pick_target() for _ in range(6)] == [2, 0, 1, 2, 0, 1]
    rr = worker("rr")
    rr.target_inflight = [0, 5, 5]
    assert [rr._pick_target() for _ in range(4)] == [1, 2, 0, 1]

"""The decode roofline: hand-computed cases, inputs with their sources, and the figures a run reports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from llmsurge.metrics.roofline import GB, TERA, RooflineInputs, ceiling, from_llamacpp_meta, identify
from tests.helpers import CLI

# llama.cpp's own /v1/models meta for Gemma 3 270M Q4_K_M (../shared/realservers, 2026-11-29).
GEMMA_META = {"n_vocab": 262144, "n_ctx_train": 32768, "n_embd": 640, "n_params": 268098176, "size": 246587904}


def test_a_14b_fp16_model_on_128_gb_s_decodes_at_most_4_6_tokens_per_second_per_stream() -> None:
    inputs = RooflineInputs(weight_bytes=14e9 * 2, params=14e9, bandwidth=128 * GB)
    c = ceiling(inputs, batch=1)
    assert c.per_stream == pytest.approx(128 / 28, rel=1e-9)  # 4.571…: the weights stream in once per token
    assert round(c.per_stream, 1) == 4.6 and c.bound == "memory"
    # A batch of 8 shares each read of the weights: 8× the aggregate, the same per stream (no KV counted).
    c8 = ceiling(inputs, batch=8)
    assert c8.aggregate == pytest.approx(8 * 128 / 28) and c8.per_stream == pytest.approx(128 / 28)


def test_the_kv_cache_each_sequence_reads_lowers_the_ceiling_as_the_batch_grows() -> None:
    # 8B FP16 (16 GB) on 3,350 GB/s, 128 KiB of KV per token (Llama 3 8B: 32 layers × 8 KV heads × 128 × 2 × 2 B),
    # 2,048 tokens of context: each sequence reads 268 MB of KV per step.
    kv = 32 * 8 * 128 * 2 * 2
    inputs = RooflineInputs(weight_bytes=16e9, params=8e9, bandwidth=3350 * GB, kv_bytes_per_token=kv)
    one = ceiling(inputs, 1, 2048)
    assert one.aggregate == pytest.approx(3350e9 / (16e9 + kv * 2048))
    big = ceiling(inputs, 64, 2048)
    assert big.aggregate == pytest.approx(64 * 3350e9 / (16e9 + 64 * kv * 2048))
    assert big.per_stream < one.per_stream / 2  # at 64 sequences the KV reads outweigh the weights


def test_compute_binds_when_the_batch_is_large_enough() -> None:
    inputs = RooflineInputs(weight_bytes=16e9, params=8e9, bandwidth=3350 * GB, peak_flops=989 * TERA)
    assert ceiling(inputs, 1).bound == "memory"
    big = ceiling(inputs, 1024)
    assert big.bound == "compute" and big.aggregate == pytest.approx(989e12 / (2 * 8e9))


def test_gemma_270m_from_llama_cpps_own_meta() -> None:
    inputs = from_llamacpp_meta(GEMMA_META)
    assert inputs.weight_bytes == 246587904 and inputs.params == 268098176
    assert inputs.sources["weight_bytes"].startswith("the server")
    # On a 2-channel DDR5 desktop (~80 GB/s): 80e9 / 246.6 MB ≈ 324 tok/s per stream at batch 1.
    c = ceiling(inputs.merged(RooflineInputs(bandwidth=80 * GB, sources={"bandwidth": "--mem-bandwidth"})), 1)
    assert c.per_stream == pytest.approx(80e9 / 246587904) and round(c.per_stream) == 324
    assert from_llamacpp_meta({"size": "big", "n_params": True}).weight_bytes is None


def test_flags_win_over_discovery_and_the_device_fills_the_rest() -> None:
    flags = RooflineInputs(weight_bytes=1e9, sources={"weight_bytes": "--model-bytes"})
    merged = flags.merged(from_llamacpp_meta(GEMMA_META)).with_device("NVIDIA H100 80GB HBM3")
    assert merged.weight_bytes == 1e9 and merged.sources["weight_bytes"] == "--model-bytes"
    assert merged.params == 268098176 and merged.sources["params"].startswith("the server")
    assert merged.bandwidth == 3350 * GB and merged.sources["bandwidth"] == "NVIDIA H100 SXM datasheet"
    assert identify("NVIDIA H100 PCIe").name == "NVIDIA H100 PCIe"  # type: ignore[union-attr]
    assert identify("NVIDIA H200").bandwidth == 4800 * GB  # type: ignore[union-attr]
    assert identify("AMD Instinct MI300X").bandwidth == 5300 * GB  # type: ignore[union-attr]
    assert identify("AMD Ryzen AI Max+ 395 w/ Radeon 8060S").bandwidth == 256 * GB  # type: ignore[union-attr]
    assert identify("Simulated GPU 80GB") is None
    assert RooflineInputs().missing() == ["--model-bytes", "--mem-bandwidth"]


def test_a_run_reports_each_segments_roofline(sim_url: str, tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["--model-bytes", "16G", "--model-params", "8B", "--mem-bandwidth", "3350", "--peak-tflops", "989"]
    r = subprocess.run(
        [*CLI, "run", sim_url, "-c", "4", "-d", "3", "--output-tokens", "32", *args, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    inputs = s["roofline"]["inputs"]
    assert inputs["weight_bytes"] == {"value": 16e9, "source": "--model-bytes"}
    assert inputs["bandwidth"]["value"] == 3350e9 and "KV cache" in s["roofline"]["note"]
    seg = s["segments"][0]["roofline"]
    per_stream = 1000.0 / s["segments"][0]["median_tpot_ms"]
    assert seg["measured_per_stream_tok_s"] == pytest.approx(per_stream)
    assert seg["ceiling_per_stream_tok_s"] == pytest.approx(3350e9 / 16e9)  # weights only: the batch shares them
    assert seg["fraction"] == pytest.approx(per_stream / (3350e9 / 16e9)) and seg["bound"] == "memory"
    assert 1.0 <= seg["batch"] <= 4.5
    assert 0.0 < seg["measured_dram_active"] <= 0.8  # DCGM's DRAM activity beside the computed fraction
    assert "of the 209.4 tok/s memory ceiling" in r.stdout
    r = subprocess.run([*CLI, "run", sim_url, "-n", "2", "--model-bytes", "lots"], capture_output=True, text=True)
    assert r.returncode == 2 and "not an amount" in r.stderr


@pytest.mark.slow
def test_without_inputs_the_summary_says_what_is_missing(sim_url: str, tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = subprocess.run(
        [*CLI, "run", sim_url, "-c", "2", "-n", "4", "--output-tokens", "8", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["roofline"]["missing"] == ["--model-bytes", "--mem-bandwidth"]
    assert s["segments"][0].get("roofline") is None
    assert "roofline" not in r.stdout  # nothing known: no line on every run
    r = subprocess.run(
        [*CLI, "run", sim_url, "-c", "2", "-n", "4", "--model-bytes", "1G", "-o", str(tmp_path / "half")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "roofline: needs --mem-bandwidth" in r.stdout


@pytest.mark.slow
async def test_the_load_pane_shows_decode_against_its_ceiling(sim_url: str, tmp_path: Path) -> None:
    from llmsurge.engine.session import RunConfig
    from llmsurge.presets import find_preset
    from llmsurge.tui.app import make_app
    from llmsurge.widgets.load_panel import LoadPanel
    from tests.helpers import pilot_until as _until
    from tests.test_tui import _screen_lines

    cfg = RunConfig(
        scenario=find_preset("demo").with_overrides(concurrency=2, output_tokens=32, input_tokens=32),
        url=sim_url,
        workers=1,
        output=tmp_path / "results",
        keep_alive=True,
        calibrate=False,
        roofline=RooflineInputs(weight_bytes=16e9, bandwidth=3350 * GB),
    )
    app = make_app(cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: bool(app.snapshot_source().roofline[1]), timeout=30)
        text, short = app.snapshot_source().roofline
        assert text.startswith("decode ") and "of the 209 tok/s memory ceiling" in text
        assert "of 209/s" in short
        await _until(pilot, lambda: "DRAM" in app.snapshot_source().roofline[1], timeout=30)
        text, short = app.snapshot_source().roofline
        assert "DRAM active" in text and "measured (DCGM)" in text  # the sim's DCGM_FI_PROF_DRAM_ACTIVE
        agg = app.snapshot_source().roofline_aggregate
        assert agg is not None and agg == pytest.approx(3350e9 / 16e9 * max(1.0, agg / (3350e9 / 16e9)))
        panel = app.screen.query_one(LoadPanel)
        await _until(pilot, lambda: any("of ceiling" in line for line in _screen_lines(app.export_screenshot())))
        assert str(panel.tooltip).startswith("decode ")
        await pilot.press("q")
        await _until(pilot, lambda: not app.is_running)

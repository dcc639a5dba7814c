from __future__ import annotations

import numpy as np

from llmsurge.metrics.records import RequestRecord
from llmsurge.metrics.stats import describe_ms, percentile, throughput


def test_describe_matches_numpy_linear_and_population_std() -> None:
    rng = np.random.default_rng(1)
    vals = rng.gamma(2.0, 0.05, 1001)
    d = describe_ms("ttft", vals)
    ms = vals * 1000
    assert np.isclose(d["mean_ttft_ms"], ms.mean())
    assert np.isclose(d["median_ttft_ms"], np.median(ms))
    assert np.isclose(d["std_ttft_ms"], ms.std(ddof=0))
    assert np.isclose(d["p99_ttft_ms"], np.percentile(ms, 99, method="linear"))
    assert np.isclose(d["p90_ttft_ms"], np.percentile(ms, 90))


def test_empty_is_zero_and_custom_percentile_names() -> None:
    d = describe_ms("itl", [], (50.0, 99.9))
    assert d == {"mean_itl_ms": 0.0, "median_itl_ms": 0.0, "std_itl_ms": 0.0, "p50_itl_ms": 0.0, "p99.9_itl_ms": 0.0}
    assert np.isnan(percentile([], 50))


def test_throughput_formulas() -> None:
    t = throughput(completed=10, input_tokens=1000, output_tokens=500, duration=5.0)
    assert t == {"request_throughput": 2.0, "output_throughput": 100.0, "total_token_throughput": 300.0}


def test_tpot_definition() -> None:
    r = RequestRecord("a", 1, 0, 0.0, 0.0, ttft=0.1, e2el=1.1, output_tokens=11)
    assert r.tpot is not None and abs(r.tpot - 0.1) < 1e-12
    r.output_tokens = 1
    assert r.tpot is None

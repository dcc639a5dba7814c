"""Is ``llmsurge compare``'s noise model calibrated? Runs against the simulated server and counts its verdicts.

    python -m bench.calibrate_compare [--scenario closed|lockstep|poisson] [--pairs 20] [--seconds 8] [--keep DIR]
                                      [--analyse DIR]

Two simulated servers: the default one, and one whose prefill is 10% slower (``llmsurge sim --prefill-us 22``).
``--pairs`` pairs of identical runs (the default server, different seeds) and as many pairs whose candidate ran
against the slower prefill. For the identical pairs, every row that carries an arrow (▲/▼) is a false alarm; for
the slower pairs, a miss is a pair whose TTFT rows show no ▼ (or any ▲). ``--analyse DIR`` recounts runs kept by an
earlier ``--keep DIR`` (to try a noise model without running again). Prints a markdown table; the raw counts go to
bench/results/compare_calibration_SCENARIO.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmsurge.metrics.compare import compare
from llmsurge.metrics.runs import load_run

RESULTS = Path(__file__).parent / "results"
SLOWER_PREFILL_US = 22.0  # the default is 20 µs per prompt token: 10% slower
SCENARIOS = {
    "closed": ["-c", "8", "--input-tokens", "2048", "--output-tokens", "uniform:24,40"],
    "lockstep": ["-c", "8", "--input-tokens", "2048", "--output-tokens", "32"],
    "poisson": ["-r", "10", "--input-tokens", "2048", "--output-tokens", "32"],
}
"""Prompts long enough that prefill is most of a request's TTFT, outputs short enough for many requests a run.
``closed``: a closed loop, output lengths varied as real answers' are; ``lockstep``: the same at one fixed length —
every request of a wave starts and ends together, and how a wave splits across engine steps is set by the first
wave and kept for the whole run: a run-level effect no single run can show; ``poisson``: open loop, Poisson arrivals
(``vllm bench serve``'s default) near the server's saturation."""


def _sim(port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmsurge", "sim", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "serving" not in line:
        proc.kill()
        raise SystemExit(f"the simulated server did not start: {line.strip()}")
    return proc


def _run(url: str, scenario: list[str], seed: int, seconds: float, out: Path) -> None:
    argv = [sys.executable, "-m", "llmsurge", "run", url, *scenario, "-d", f"{seconds}s", "--seed", str(seed)]
    subprocess.run([*argv, "--output", str(out)], check=True, stdout=subprocess.DEVNULL)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collect(pairs: int, seconds: float, root: Path, scenario: list[str]) -> None:
    """Runs ``pairs`` × (baseline, identical, slower) into ``root``: base-K, same-K, slow-K."""
    ports = _free_port(), _free_port()
    servers = [_sim(ports[0]), _sim(ports[1], "--prefill-us", str(SLOWER_PREFILL_US))]
    try:
        for k in range(pairs):
            for name, port, seed in (("base", 0, 3 * k + 1), ("same", 0, 3 * k + 2), ("slow", 1, 3 * k + 3)):
                _run(f"http://127.0.0.1:{ports[port]}", scenario, seed, seconds, root / f"{name}-{k}")
            print(f"pair {k + 1}/{pairs}", file=sys.stderr, flush=True)
    finally:
        for s in servers:
            s.terminate()
            s.wait(10)


def analyse(root: Path) -> dict[str, object]:
    """False alarms over the identical pairs, misses over the slower ones."""
    rows = alarms = 0
    by_row: dict[str, int] = {}
    misses = flagged = 0
    pairs = sorted(int(p.name.split("-")[1]) for p in root.glob("base-*"))
    for k in pairs:
        base = load_run(root / f"base-{k}")
        same = compare([base, load_run(root / f"same-{k}")])
        for level in same.levels:
            for row in level.rows:
                change = row.changes[1]
                rows += 1
                if change is not None and change.better is not None:
                    alarms += 1
                    by_row[row.metric.label] = by_row.get(row.metric.label, 0) + 1
        slow = compare([base, load_run(root / f"slow-{k}")])
        ttft = [r.changes[1] for lv in slow.levels for r in lv.rows if r.metric.metric == "ttft"]
        worse = any(c is not None and c.better is False for c in ttft)
        better = any(c is not None and c.better is True for c in ttft)
        if worse and not better:
            flagged += 1
        else:
            misses += 1
    return {
        "pairs": len(pairs),
        "rows": rows,
        "false_alarms": alarms,
        "within_noise_share": 1 - alarms / rows if rows else None,
        "false_alarms_by_row": by_row,
        "slower_prefill_flagged": flagged,
        "slower_prefill_missed": misses,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--scenario", choices=tuple(SCENARIOS), default="closed")
    p.add_argument("--keep", type=Path, help="keep the runs in this folder")
    p.add_argument("--analyse", type=Path, help="recount the runs kept in this folder; run nothing")
    args = p.parse_args()
    if args.analyse:
        root = args.analyse
    else:
        root = args.keep or Path(tempfile.mkdtemp(prefix="llmsurge-calibrate-"))
        root.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        collect(args.pairs, args.seconds, root, SCENARIOS[args.scenario])
        print(f"ran {3 * args.pairs} runs in {time.monotonic() - started:.0f} s", file=sys.stderr)
    found = analyse(root)
    found.update({"scenario": " ".join(SCENARIOS[args.scenario]), "seconds": args.seconds, "cpus": os.cpu_count()})
    print("| pairs | rows | false alarms | within noise | slower prefill flagged | missed |")
    print("|---|---|---|---|---|---|")
    share = found["within_noise_share"]
    print(
        f"| {found['pairs']} | {found['rows']} | {found['false_alarms']} |"
        f" {share:.1%} | {found['slower_prefill_flagged']} | {found['slower_prefill_missed']} |"
        if isinstance(share, float)
        else "| no pairs |"
    )
    print("false alarms by row:", json.dumps(found["false_alarms_by_row"], ensure_ascii=False))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"compare_calibration_{args.scenario}.json").write_text(
        json.dumps(found, indent=2, ensure_ascii=False) + "\n"
    )
    if not args.keep and not args.analyse:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Server hooks, opt-in: ``--reset-cache`` empties the simulated server's real prefix cache before each stage (a
re-run of the same prompts then starts cold), ``--profile`` runs its profiler around the first segment; a server
without the routes is named in a note and the run goes on, and a cache still warm after a reset is said."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_cli, sim_cli

SAME = ("-c", "2", "-n", "16", "--seed", "7", "--input-tokens", "64", "--output-tokens", "8")


def _summary(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "summary.json").read_text())


def test_reset_cache_makes_a_rerun_of_the_same_prompts_start_cold(tmp_path: Path) -> None:
    with sim_cli() as url:  # a server of its own: no other test's prompts in its cache
        for name, flags in (("first", ()), ("again", ()), ("reset", ("--reset-cache", "--profile"))):
            r = run_cli("run", url, *SAME, *flags, "-o", str(tmp_path / name))
            assert r.returncode == 0, r.stderr
    again, reset = _summary(tmp_path / "again"), _summary(tmp_path / "reset")
    assert again["prefix_cache_hit_rate"] > 0.5  # the same prompts again: served from the cache
    assert reset["prefix_cache_hit_rate"] == 0.0 and reset["config"]["reset_cache"] is True  # emptied first
    notes = " ".join(reset["notes"])
    assert "prefix cache was emptied before stage 1" in notes and "profiler ran around the first segment" in notes


def test_a_server_without_the_routes_is_named_and_the_run_goes_on(hostile_url: str, tmp_path: Path) -> None:
    """The hostile server has no reset route, and its answers always report cached prompt tokens: both said."""
    out = tmp_path / "h"
    r = run_cli("run", hostile_url, "--model", "cached", "-c", "1", "-n", "3", "--reset-cache", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = _summary(out)
    assert s["completed"] == 3
    said = [n for n in s["notes"] if n.startswith("--reset-cache")]
    assert len(said) == 2 and "POST /reset_prefix_cache was answered HTTP 404" in said[0], s["notes"]
    assert "still took" in said[1] and "from the server's cache after the reset" in said[1]  # and it stayed warm

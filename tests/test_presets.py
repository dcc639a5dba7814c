from __future__ import annotations

from pathlib import Path

import pytest

from llmsurge.presets import PresetError, find_preset, list_presets, load_preset_file


def test_builtin_presets_load_with_their_numbers() -> None:
    names = {sc.name for sc, _p, err in list_presets() if sc and not err}
    assert {"sanity", "max-throughput", "min-latency", "single-user", "burst", "heavy", "ramp"} <= names
    mt = find_preset("max-throughput")
    assert mt.stages[0].load.concurrency == 32 and mt.stages[0].requests == 160
    assert (mt.shape.input_tokens, mt.shape.output_tokens) == (512, 256)
    s = find_preset("sanity")
    assert [c.output_tokens for c in s.shape.cases] == [100, 300, 800, 500]
    assert s.stages[0].load.concurrency == 1
    su = find_preset("single-user")
    assert su.stages[0].load.rate == 1.0
    ramp = find_preset("ramp")
    concs = [st.load.concurrency for st in ramp.stages]
    assert concs == [2**i for i in range(len(concs))] and ramp.stop_on_plateau


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[load]\nconcurrency = 4\nbogus = 1\n[length]\nrequests = 3\n", "load.bogus: unknown key; allowed here"),
        ("[load]\nconcurrency = 'x'\n[length]\nrequests = 3\n", "load.concurrency: must be an integer"),
        ("[load]\nrate = 2\narrival = 'weibull'\n[length]\nrequests = 3\n", "arrival: must be one of constant"),
        ("[load]\nconcurrency = 4\n", "length: needs requests = N or duration"),
        ("[load]\nconcurrency = 4\n[length]\nrequests = 3\n[request]\nendpoint = 'embed'\n", "request.endpoint"),
        ("[load\n", "not valid TOML"),
    ],
)
def test_bad_presets_name_file_key_and_allowed(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(PresetError) as e:
        load_preset_file(f)
    assert str(f) in str(e.value) and needle in str(e.value)


def test_user_folder_adds_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSURGE_PRESETS_DIR", str(tmp_path))
    (tmp_path / "mine.toml").write_text(
        'description = "my own"\n[load]\nrate = 3\narrival = "gamma"\nburstiness = 0.5\n[length]\nduration = 5\n'
    )
    sc = find_preset("mine")
    assert sc.name == "mine" and sc.stages[0].load.rate == 3 and sc.stages[0].load.burstiness == 0.5
    assert "mine" in {s.name for s, _p, _e in list_presets() if s}
    with pytest.raises(PresetError, match="no preset named 'nah'"):
        find_preset("nah")


def test_overrides_collapse_stages_and_clear_cases() -> None:
    sc = find_preset("ramp").with_overrides(concurrency=5, requests=10)
    assert len(sc.stages) == 1 and sc.stages[0].load.concurrency == 5 and sc.stages[0].requests == 10
    assert sc.stages[0].duration is None
    s2 = find_preset("sanity").with_overrides(output_tokens=7)
    assert s2.shape.cases == () and s2.shape.output_tokens == 7
    s3 = find_preset("max-throughput").with_overrides(rate=4.0, arrival="constant")
    assert s3.stages[0].load.rate == 4.0 and s3.stages[0].load.arrival == "constant"

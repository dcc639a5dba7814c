"""The registry: every endpoint module is found, the command line and presets take their names and options from it,
and each has its tests beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsurge.cli import make_parser
from llmsurge.engine.endpoints import ENDPOINTS, endpoint
from llmsurge.presets import PresetError, load_preset_file

MODULES = Path(__file__).parents[2] / "llmsurge" / "engine" / "endpoints"


def test_every_module_is_an_endpoint_with_its_tests_beside_it() -> None:
    modules = {p.stem for p in MODULES.glob("*.py") if not p.stem.startswith("_") and p.stem != "base"}
    assert set(ENDPOINTS) == modules and next(iter(ENDPOINTS)) == "chat"  # found, chat first
    assert len({e.path for e in ENDPOINTS.values()}) == len(ENDPOINTS)
    for name in ENDPOINTS:
        assert (Path(__file__).parent / f"test_{name}.py").is_file(), f"tests/endpoints/test_{name}.py"
    with pytest.raises(KeyError, match="unknown endpoint 'embedding': chat, completions"):
        endpoint("embedding")


def test_the_command_line_offers_what_the_registry_has() -> None:
    action = next(a for a in make_parser()._subparsers._group_actions[0].choices["run"]._actions  # type: ignore[union-attr]
                  if "--endpoint" in a.option_strings)  # fmt: skip
    assert tuple(action.choices or ()) == tuple(ENDPOINTS)
    assert all(e.path in (action.help or "") and e.summary in (action.help or "") for e in ENDPOINTS.values())


HEAD = 'name = "p"\ndescription = "d"\n[load]\nconcurrency = 2\n[length]\nrequests = 4\n[request]\n'


def test_a_preset_giving_another_endpoints_option_is_refused(tmp_path: Path) -> None:
    preset = tmp_path / "p.toml"
    preset.write_text(HEAD + 'endpoint = "completions"\ntools = 2\n')
    with pytest.raises(PresetError, match=r"request\.tools: applies to endpoint 'chat' \(this preset sends"):
        load_preset_file(preset)
    preset.write_text(HEAD + 'endpoint = "rerank"\ndocuments = 3\n')
    assert load_preset_file(preset).shape.documents == 3


def test_the_simulated_server_answers_every_endpoint_at_its_path() -> None:
    from llmsurge.sim.handlers import HANDLERS

    assert set(HANDLERS) == set(ENDPOINTS)  # one handler module per endpoint module, by the same name
    assert all(ENDPOINTS[name].path in module.ROUTES for name, module in HANDLERS.items())

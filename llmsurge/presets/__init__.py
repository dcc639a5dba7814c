"""Preset scenarios: TOML files shipped here, plus the user's own in a presets folder."""

from llmsurge.presets.loader import PresetError, find_preset, list_presets, load_preset_file, user_presets_dir

__all__ = ["PresetError", "find_preset", "list_presets", "load_preset_file", "user_presets_dir"]

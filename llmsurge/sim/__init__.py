"""The embedded simulated OpenAI-compatible server: the demo's default target and the tests' server."""

from llmsurge.sim.server import Faults, SimConfig

__all__ = ["Faults", "SimConfig"]

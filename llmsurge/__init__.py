"""llmsurge: load testing for OpenAI-compatible LLM inference servers, live in the terminal."""

from __future__ import annotations

__version__ = "0.1.0"

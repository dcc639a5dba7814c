"""The request shapes llmsurge sends, by name, and where each goes on the server — light enough for the command
line's parser (``--endpoint``'s choices and help come from here)."""

from __future__ import annotations

PATHS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",  # the Anthropic Messages API (vLLM and llama.cpp serve it)
    "embeddings": "/v1/embeddings",
    "rerank": "/v1/rerank",  # vLLM, llama.cpp and Jina; TEI serves /rerank
}
"""Endpoint name → path under the server's base URL."""

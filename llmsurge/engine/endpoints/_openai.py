"""OpenAI's ``choices`` answers, read the same for chat completions and completions: a streamed chunk's delta (chat)
or text (completions), its tool calls and reasoning, the usage riding on a chunk (with llama.cpp's ``timings`` and
vLLM's per-request ``metrics``), and a whole answer."""

from __future__ import annotations

from llmsurge.engine.endpoints.base import ChunkCounter, Reading, Token, error_message, whole_answer
from llmsurge.metrics.records import Failure, RequestRecord


def with_server_clock(usage: object, msg: dict[str, object]) -> object:
    """The usage with the server's own clock beside it: llama.cpp's ``timings`` (its prompt cache, ``cache_n``)
    and vLLM's per-request ``metrics`` (``--enable-per-request-metrics``) ride with it, not in it."""
    if not isinstance(usage, dict):
        return usage
    timings, metrics = msg.get("timings"), msg.get("metrics")
    if isinstance(timings, dict) and "timings" not in usage:
        usage = {**usage, "timings": timings}
    if isinstance(metrics, dict) and "metrics" not in usage:
        usage = {**usage, "metrics": metrics}
    return usage


def read_chunk(msg: dict[str, object], stream: Reading, t: float) -> Token | None:
    """One streamed ``choices`` chunk: its text (chat's ``delta.content``, completions' ``text``), the reasoning
    before it, its tool calls' arguments, its finish reason; or its usage, or an error object."""
    u = msg.get("usage")
    if u:
        stream.usage = with_server_clock(u, msg)
    choices = msg.get("choices")
    if not choices:
        if "error" in msg:
            stream.fail(Failure.STREAM_ERROR, error_message(msg))
        return None
    choice = choices[0] if isinstance(choices, list) else None
    rec = stream.rec
    if not isinstance(choice, dict):
        stream.fail(Failure.PROTOCOL, f"a choices entry that is not an object: {str(msg)[:80]!r}")
        return None
    delays = stream.counter.delays
    sent = msg.get("llmsurge_sent") if delays is not None else None
    if delays is not None and isinstance(sent, float):
        delays.append(t - sent)
    delta = choice.get("delta")
    thinking = False
    if isinstance(delta, dict):
        text = delta.get("content")
        calls = delta.get("tool_calls")
        if calls and isinstance(calls, list):  # a tool call's name and arguments, streamed: output
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    i = call.get("index", 0)
                    rec.tool_calls.setdefault(i if isinstance(i, int) else 0, []).append(str(fn.get("arguments") or ""))
            if rec.ttfc is None:
                rec.ttfc = t - rec.start
        # Reasoning models stream their thinking first: vLLM and SGLang as reasoning_content, others (OpenRouter,
        # Ollama, vLLM >= 0.10) as reasoning. It is output; the answer is content.
        thinking = not text and bool(delta.get("reasoning_content") or delta.get("reasoning"))
    else:
        text = choice.get("text")
    return text, choice.get("finish_reason"), thinking


def read_whole(msg: object, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
    """A whole ``choices`` answer: its message's text (or completions' text), tool calls, finish reason, usage."""
    choices = msg.get("choices") if isinstance(msg, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(msg, dict) or not isinstance(choice, dict):
        rec.fail(Failure.PROTOCOL, "response had no choices")
        return
    message = choice.get("message")
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if isinstance(calls, list):  # kept for the arguments' check
        for i, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                rec.tool_calls[i] = [str(fn.get("arguments") or "")]
    text = (message.get("content") if isinstance(message, dict) else None) or choice.get("text") or ""
    usage = with_server_clock(msg.get("usage"), msg)
    whole_answer(rec, t, str(text), str(choice.get("finish_reason") or ""), usage, counter)

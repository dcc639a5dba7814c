"""Server hooks, opt-in: ``--reset-cache`` empties the server's prefix cache before each stage's segment, so every
level starts cold; ``--profile`` runs the server's profiler around the first measured segment. Each is one request
to a route the server's kind has:

- vLLM: ``POST /reset_prefix_cache``, ``POST /start_profile`` and ``/stop_profile`` (served only with
  ``VLLM_SERVER_DEV_MODE=1``, and with ``VLLM_TORCH_PROFILER_DIR`` set, respectively);
- SGLang: ``POST /flush_cache``, ``POST /start_profile`` and ``/stop_profile``;
- llama.cpp: ``POST /slots/{id}?action=erase`` for each slot ``GET /slots`` lists (``--slots`` and
  ``--slot-save-path`` flags); no profiler route.

A server that refuses or lacks the route is said plainly, once, in a note (and the hook is not tried again): the
run goes on without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from llmsurge.net import Answer, Target, fetch

TIMEOUT_S = 30.0
"""A reset or a profiler start can take a while on a big server; longer is a server that will not answer."""

WHY = {
    "vLLM": {
        "reset": "vLLM serves it only with VLLM_SERVER_DEV_MODE=1",
        "profile": "vLLM serves it only with VLLM_TORCH_PROFILER_DIR set",
    },
    "llama.cpp": {"reset": "llama-server erases its slots only when started with --slots and --slot-save-path DIR"},
}
"""What a refusal usually means, by server kind."""


@dataclass
class ServerHooks:
    """The hooks a run asked for, against its server (``kind`` as discovery named it)."""

    target: Target
    kind: str
    reset_cache: bool = False
    profile: bool = False
    note: Callable[[str, str], None] = lambda message, level: None
    done: dict[str, int] = field(default_factory=dict)
    """How many times each hook succeeded (``reset``, ``start_profile``, ``stop_profile``)."""
    _off: set[str] = field(default_factory=set)
    _profiling: bool = False

    async def _ask(self, method: str, path: str) -> Answer:
        """One request to the server through :func:`llmsurge.net.fetch`: a deadline, a size cap, never a raise."""
        async with httpx.AsyncClient(trust_env=False) as client:
            return await fetch(client, self.target.base_url + path, self.target.headers(), TIMEOUT_S, method=method)

    async def _post(self, what: str, paths: list[str]) -> bool:
        """POST each of ``paths`` (all must succeed); on a refusal: a note, once, and ``what`` is off."""
        if what in self._off:
            return False
        for path in paths:
            ans = await self._ask("POST", path)
            if not ans.ok:
                return self._refused(what, f"POST {path} {_refusal(ans)}")
        self.done[what] = self.done.get(what, 0) + 1
        return True

    def _refused(self, what: str, said: str) -> bool:
        self._off.add(what)
        topic = "reset" if what == "reset" else "profile"
        hint = WHY.get(self.kind, {}).get(topic)
        flag = "--reset-cache" if topic == "reset" else "--profile"
        self.note(f"{flag}: the server did not do it: {said}{f' ({hint})' if hint else ''}; the run goes on", "warning")
        return False

    async def before_stage(self, index: int) -> None:
        """Before stage ``index`` (0-based) opens its segment: empty the prefix cache; start the profiler for the
        first."""
        if self.reset_cache and await self._reset() and self.done["reset"] == 1:  # said once, not every stage
            self.note(
                f"--reset-cache: the server's prefix cache was emptied before stage {index + 1}, and is before each"
                " stage after it",
                "info",
            )
        if self.profile and index == 0:
            if self.kind == "llama.cpp":
                self._refused("start_profile", "llama-server has no profiler route")
                return
            self._profiling = await self._post("start_profile", ["/start_profile"])

    async def after_stage(self, index: int) -> None:
        """After stage ``index`` closes: stop the profiler it started."""
        if self._profiling and index == 0:
            await self.stop()

    async def stop(self) -> None:
        """Stop the profiler if it runs (the run's end, however it ends)."""
        if self._profiling:
            self._profiling = False
            if await self._post("stop_profile", ["/stop_profile"]):
                self.note("--profile: the server's profiler ran around the first segment (its trace is the server's)",
                          "info")  # fmt: skip

    async def _reset(self) -> bool:
        if self.kind == "SGLang":
            return await self._post("reset", ["/flush_cache"])
        if self.kind == "llama.cpp":
            return await self._erase_slots()
        return await self._post("reset", ["/reset_prefix_cache"])  # vLLM, the simulated server, and a guess

    async def _erase_slots(self) -> bool:
        if "reset" in self._off:
            return False
        ans = await self._ask("GET", "/slots")
        try:
            slots = ans.json() if ans.ok else None
        except ValueError:
            slots = None
        if not isinstance(slots, list):
            return self._refused("reset", f"GET /slots {_refusal(ans)}")
        ids = [s.get("id") for s in slots if isinstance(s, dict) and isinstance(s.get("id"), int)]
        return await self._post("reset", [f"/slots/{i}?action=erase" for i in ids])


def _refusal(ans: Answer) -> str:
    """How the server refused, in its own words where it gave them: ``was answered HTTP 501: …``."""
    if ans.status is None or ans.problem:
        return f"failed ({ans.problem or 'no answer'})"
    said = ""
    try:
        body = ans.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    if message:
        said = f": {str(message)[:200]}"
    return f"was answered HTTP {ans.status}{said}" if ans.status >= 300 else "was answered with no JSON list"

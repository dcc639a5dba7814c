"""What a run starts before it knows its server: the simulated server and this machine's worker processes.

Both take seconds of interpreter start-up and imports that need nothing from the server (a warm worker gets its
target later: :meth:`~llmsurge.engine.backend.LocalBackend.warm`). Light to import, so ``llmsurge demo`` starts
them before its own heavy imports (Textual, numpy, the engine) and they overlap. :class:`~llmsurge.engine.session.
RunSession` adopts what was launched, or launches it itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmsurge.engine.backend import LocalBackend
from llmsurge.sim.process import SimProcess

if TYPE_CHECKING:
    from llmsurge.sim.server import SimConfig


@dataclass
class Launched:
    """The processes one run started early; :meth:`discard` ends those the run did not take."""

    url: str | None
    workers: int
    sim: SimProcess | None = None
    local: LocalBackend | None = None

    def matches(self, url: str | None, workers: int) -> bool:
        """Whether these are the processes a run against ``url`` with ``workers`` local workers needs."""
        return self.url == url and self.workers == workers

    def discard(self) -> None:
        """End what was started (warm workers no pool took, the simulated server)."""
        if self.local is not None:
            self.local.discard()
        if self.sim is not None:
            self.sim.stop()


def launch(
    url: str | None,
    workers: int,
    sim_config: SimConfig | None = None,
    faults: str | None = None,
    max_seqs: int | None = None,
) -> Launched:
    """Start the simulated server (no ``url``) and ``workers`` warm local workers (0: none, as for Ray); returns
    at once."""
    out = Launched(url, workers)
    if url is None:
        out.sim = SimProcess(sim_config, faults=faults, max_seqs=max_seqs)
        out.sim.launch()
    if workers:
        out.local = LocalBackend()
        out.local.warm(workers)
    return out


def lighten_start(url: str | None) -> None:
    """For the command line's own process, before it starts anything or imports the engine: skip imports and set-up
    that nothing in this run uses, in it and in the processes it starts.

    httpx imports its own command line (rich, click, pygments) when it can, and falls back to a stub when that
    import fails; we never run it. With no ``url`` the run's only server is the simulated one, plain HTTP on
    127.0.0.1, so no process of it makes a TLS connection — yet importing aiohttp loads the system's CA bundle into
    two SSL contexts (~0.1 s in each of the UI's, the server's and every worker's start-up, on two cores one
    critical path): OpenSSL is pointed at an empty bundle here, and the children inherit it."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    if url is None:
        os.environ["SSL_CERT_FILE"] = os.devnull
        os.environ["SSL_CERT_DIR"] = os.devnull

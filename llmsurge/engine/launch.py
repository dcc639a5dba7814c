"""What a run starts before it knows its server: the simulated server and this machine's worker processes.

Both take seconds of interpreter start-up and imports that need nothing from the server (a warm worker gets its
target later: :meth:`~llmsurge.engine.backend.LocalBackend.warm`). Light to import, so ``llmsurge demo`` starts
them before its own heavy imports (Textual, numpy, the engine) and they overlap. :class:`~llmsurge.engine.session.
RunSession` adopts what was launched, or launches it itself.
"""

from __future__ import annotations

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

"""Run the simulated server in a child process (the demo, ``llmsurge run`` without a URL, and the tests)."""

from __future__ import annotations

import multiprocessing as mp
from types import TracebackType

from llmsurge.lifetime import die_with_parent, leave_stop_signals_to_parent, set_process_name
from llmsurge.sim.server import SimConfig, serve


def url_for(host: str, port: int) -> str:
    """``http://HOST:PORT``, with an IPv6 address in brackets (``http://[::1]:8000``)."""
    return f"http://[{host}]:{port}" if ":" in host and not host.startswith("[") else f"http://{host}:{port}"


def _child(config: SimConfig, host: str, port: int, ready: mp.Queue, reuse_port: bool) -> None:  # type: ignore[type-arg]
    leave_stop_signals_to_parent()  # first (threads inherit its mask): the parent decides when we stop
    die_with_parent()  # a load test's server never outlives the run that started it
    set_process_name("llmsurge-sim")
    serve(config, host, port, on_ready=ready.put, reuse_port=reuse_port)


class SimProcess:
    """The simulated server in its own process, so it never shares a core's event loop with the client.

    Use as a context manager; ``url`` is ready once entered.
    """

    def __init__(
        self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0, processes: int = 1
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.port = port
        self.processes = max(1, processes)
        """Server processes sharing the port (SO_REUSEPORT): more than one core of fast-mode tokens."""
        self._proc: mp.process.BaseProcess | None = None
        self._extra: list[mp.process.BaseProcess] = []

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return url_for(self.host, self.port)

    def start(self, timeout: float = 30.0) -> str:
        """Start the child and wait until it listens; returns its URL."""
        ctx = mp.get_context("spawn")
        ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        reuse = self.processes > 1
        self._proc = ctx.Process(
            target=_child, args=(self.config, self.host, self.port, ready, reuse), daemon=True, name="llmsurge-sim"
        )
        self._proc.start()
        try:
            self.port = int(ready.get(timeout=timeout))
            for i in range(1, self.processes):
                p = ctx.Process(
                    target=_child,
                    args=(self.config, self.host, self.port, ready, True),
                    daemon=True,
                    name=f"llmsurge-sim-{i}",
                )
                p.start()
                self._extra.append(p)
                ready.get(timeout=timeout)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"the simulated server did not start on {self.host}:{self.port}") from exc
        return self.url

    @property
    def pids(self) -> list[int]:
        """Process ids of every server process."""
        return [p.pid for p in (self._proc, *self._extra) if p is not None and p.pid]

    def stop(self) -> None:
        """Stop the children (they ignore SIGTERM, as stop signals are the run's to handle: SIGKILL)."""
        for p in (self._proc, *self._extra):
            if p is not None and p.is_alive():
                p.kill()
                p.join(5)
        self._proc = None
        self._extra = []

    @property
    def alive(self) -> bool:
        """Whether the child still runs."""
        return self._proc is not None and self._proc.is_alive()

    def __enter__(self) -> SimProcess:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

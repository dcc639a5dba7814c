"""Run the simulated server in a child process (the demo, ``llmsurge run`` without a URL, and the tests)."""

from __future__ import annotations

import multiprocessing as mp
import signal
from types import TracebackType

from llmsurge.sim.server import SimConfig, serve


def _child(config: SimConfig, host: str, port: int, ready: mp.Queue) -> None:  # type: ignore[type-arg]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    serve(config, host, port, on_ready=ready.put)


class SimProcess:
    """The simulated server in its own process, so it never shares a core's event loop with the client.

    Use as a context manager; ``url`` is ready once entered.
    """

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.port = port
        self._proc: mp.process.BaseProcess | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        """Start the child and wait until it listens; returns its URL."""
        ctx = mp.get_context("spawn")
        ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        self._proc = ctx.Process(
            target=_child, args=(self.config, self.host, self.port, ready), daemon=True, name="llmsurge-sim"
        )
        self._proc.start()
        try:
            self.port = int(ready.get(timeout=timeout))
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"the simulated server did not start on {self.host}:{self.port}") from exc
        return self.url

    def stop(self) -> None:
        """Stop the child."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = None

    @property
    def alive(self) -> bool:
        """Whether the child still runs."""
        return self._proc is not None and self._proc.is_alive()

    def __enter__(self) -> SimProcess:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

"""Run the simulated server in a child process (the demo, ``llmsurge run`` without a URL, and the tests)."""

from __future__ import annotations

import multiprocessing as mp
import os
from types import TracebackType
from typing import TYPE_CHECKING

from llmsurge.lifetime import die_with_parent, leave_stop_signals_to_parent, set_process_name

if TYPE_CHECKING:  # light to import: the CLI starts the server with it before its own heavy imports
    from llmsurge.sim.server import SimConfig


def url_for(host: str, port: int) -> str:
    """``http://HOST:PORT``, with an IPv6 address in brackets (``http://[::1]:8000``)."""
    return f"http://[{host}]:{port}" if ":" in host and not host.startswith("[") else f"http://{host}:{port}"


def _child(
    config: SimConfig | None,
    host: str,
    port: int,
    ready: mp.Queue,  # type: ignore[type-arg]
    reuse_port: bool,
    faults: str | None = None,
    max_seqs: int | None = None,
) -> None:
    leave_stop_signals_to_parent()  # first (threads inherit its mask): the parent decides when we stop
    die_with_parent()  # a load test's server never outlives the run that started it
    set_process_name("llmsurge-sim")
    # The server never makes a TLS connection, but importing aiohttp loads the system's CA bundle twice (~0.1 s
    # of a start-up that shares the cores with the TUI's): point OpenSSL at an empty bundle in this process only.
    os.environ["SSL_CERT_FILE"] = os.devnull
    os.environ["SSL_CERT_DIR"] = os.devnull
    from llmsurge.sim.server import Faults, SimConfig, serve

    try:
        config = config or SimConfig(faults=Faults.parse(faults))
    except ValueError:
        return  # the CLI launched us before checking its flags: it says what is wrong, in one line, and ends us
    if max_seqs:
        config.timing.max_seqs = max_seqs
    serve(config, host, port, on_ready=ready.put, reuse_port=reuse_port)


class SimProcess:
    """The simulated server in its own process, so it never shares a core's event loop with the client.

    Use as a context manager; ``url`` is ready once entered. Without ``config``, the child builds the default
    one with ``faults`` (``--faults``) and ``max_seqs`` (``--max-seqs``) applied, so the parent need not import
    the server to start it.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        processes: int = 1,
        faults: str | None = None,
        max_seqs: int | None = None,
    ) -> None:
        self.config = config
        self.faults = faults
        self.max_seqs = max_seqs
        self.host = host
        self.port = port
        self.processes = max(1, processes)
        """Server processes sharing the port (SO_REUSEPORT): more than one core of fast-mode tokens."""
        self._proc: mp.process.BaseProcess | None = None
        self._extra: list[mp.process.BaseProcess] = []
        self._ctx = mp.get_context("spawn")
        self._ready: mp.Queue | None = None  # type: ignore[type-arg]
        self._listening = False

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return url_for(self.host, self.port)

    def start(self, timeout: float = 30.0) -> str:
        """Start the child and wait until it listens; returns its URL."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the child and return at once (:meth:`wait_ready` waits for it to listen)."""
        if self._proc is not None:
            return
        self._ready = self._ctx.Queue()
        reuse = self.processes > 1
        args = (self.config, self.host, self.port, self._ready, reuse, self.faults, self.max_seqs)
        self._proc = self._ctx.Process(target=_child, args=args, daemon=True, name="llmsurge-sim")
        self._proc.start()

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Wait until the launched child listens (and start the others sharing its port); returns the URL."""
        assert self._proc is not None and self._ready is not None, "launch() first"
        if self._listening:
            return self.url
        ctx, ready = self._ctx, self._ready
        try:
            self.port = int(ready.get(timeout=timeout))
            for i in range(1, self.processes):
                p = ctx.Process(
                    target=_child,
                    args=(self.config, self.host, self.port, ready, True, self.faults, self.max_seqs),
                    daemon=True,
                    name=f"llmsurge-sim-{i}",
                )
                p.start()
                self._extra.append(p)
                ready.get(timeout=timeout)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"the simulated server did not start on {self.host}:{self.port}") from exc
        self._listening = True
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
        self._listening = False

    @property
    def alive(self) -> bool:
        """Whether the child still runs."""
        return self._proc is not None and self._proc.is_alive()

    def __enter__(self) -> SimProcess:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

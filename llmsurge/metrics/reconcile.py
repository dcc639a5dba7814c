"""The server's clock as referee: where a segment's TTFT went, and how much of it the client added.

vLLM (and SGLang, TGI) export histograms of each request's phases on the server's own clock: time in the queue,
prefill, and TTFT from the request's arrival at its HTTP front end. Over a segment (histogram deltas:
``telemetry/prometheus.SegmentClock``) their means are exact. Ours minus the server's TTFT is what lies outside the
server's clock: its HTTP front end before the request "arrives" and after the first token, the network, and our own
reading. Our share of that is what our event loop's lag accounts for; the rest is named for what it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

AGREE_MS = 2.0
"""A gap this small (or :data:`AGREE_SHARE` of the server's TTFT) is loopback and reading: the clocks agree."""
AGREE_SHARE = 0.05


@dataclass(frozen=True)
class Reconciliation:
    """One segment's TTFT, ours against the server's, in milliseconds (means over the segment's requests)."""

    client_ttft_ms_mean: float
    server_ttft_ms_mean: float
    gap_ms_mean: float
    """Ours minus the server's: what happened outside the server's clock."""
    client_side_ms_mean: float
    """The part of the gap our own loop lag accounts for (at most the gap)."""
    server_queue_ms_mean: float | None
    server_prefill_ms_mean: float | None
    server_decode_ms_mean: float | None
    server_front_ms_mean: float | None
    """The server's TTFT less its queue and prefill: inside its clock, outside its engine (tokenizing, IPC)."""
    server_requests: float
    """Requests in the server's TTFT histogram over the segment (ours and anyone else's)."""
    verdict: str
    where: str
    """``agree``, ``client`` or ``server front end and network``: where the gap lies."""

    @property
    def rest_ms(self) -> float:
        """The gap less our share: the server's HTTP front end and the network."""
        return max(0.0, self.gap_ms_mean - self.client_side_ms_mean)

    @property
    def engine_ms_mean(self) -> float | None:
        """The engine's share of the server's TTFT: queue and prefill (None where the clock has not both)."""
        if self.server_queue_ms_mean is None or self.server_prefill_ms_mean is None:
            return None
        return self.server_queue_ms_mean + self.server_prefill_ms_mean

    def json(self) -> dict[str, object]:
        """``summary.json`` ``segments[].reconciliation``."""
        return asdict(self)


def _finite(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def reconcile(
    client_ttft_ms: float | None, clock: Mapping[str, Any], loop_lag_ms: float | None
) -> Reconciliation | None:
    """``clock``: the server's phases over the segment (``{"ttft": {"mean_ms", "count"}, "queue": …}``, as
    ``summary.json`` keeps them); None when either side has no TTFT."""
    client = _finite(client_ttft_ms)
    ttft = clock.get("ttft") or {}
    server = _finite(ttft.get("mean_ms"))
    if client is None or server is None or not ttft.get("count"):
        return None

    def mean(phase: str) -> float | None:
        return _finite((clock.get(phase) or {}).get("mean_ms"))

    queue, prefill = mean("queue"), mean("prefill")
    front = server - queue - prefill if queue is not None and prefill is not None else None
    gap = client - server
    lag = max(0.0, _finite(loop_lag_ms) or 0.0)
    ours = min(lag, max(gap, 0.0))
    rest = max(0.0, gap - ours)
    tolerance = max(AGREE_MS, AGREE_SHARE * server)
    if gap <= tolerance or (rest <= ours <= tolerance):
        where = "agree"
        verdict = (
            f"the clocks agree: our TTFT is the server's {server:.1f} ms + {gap:.1f} ms outside its clock"
            f" (our loop lag {lag:.1f} ms)"
        )
    elif ours >= rest:
        where = "client"
        verdict = (
            f"the client: our loop lag accounts for {ours:.1f} of the {gap:.1f} ms our TTFT adds to the server's"
            " — the client is the bottleneck"
        )
    else:
        where = "server front end and network"
        verdict = (
            f"the server's front end and the network: {rest:.1f} of the {gap:.1f} ms our TTFT adds to the server's"
            f" is not ours (our loop lag {lag:.1f} ms)"
        )
    return Reconciliation(
        client_ttft_ms_mean=client,
        server_ttft_ms_mean=server,
        gap_ms_mean=gap,
        client_side_ms_mean=ours,
        server_queue_ms_mean=queue,
        server_prefill_ms_mean=prefill,
        server_decode_ms_mean=mean("decode"),
        server_front_ms_mean=front,
        server_requests=float(ttft.get("count") or 0.0),
        verdict=verdict,
        where=where,
    )

"""The Sampler base: a thread sampling at 1–2 Hz and publishing typed samples into the MetricsBus.

A sampler never raises into the app: a missing library, no device, or an unreachable endpoint becomes an
:class:`~llmsurge.telemetry.samples.Unavailable` sample that the pane shows as "not available: why".
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from typing import Any, Protocol

from llmsurge.metrics.bus import MetricsBus
from llmsurge.telemetry.na import NA, NaType, na
from llmsurge.telemetry.samples import TelemetrySample, Unavailable, sample_json

__all__ = ["NA", "NaType", "Sampler", "SegmentAggregate", "na"]


class TelemetrySink(Protocol):
    """Where samples are written (the result writer)."""

    def add_telemetry(self, sample: dict[str, object]) -> None: ...


class SegmentAggregate:
    """Mean and peak of chosen fields per segment, for ``summary.json``."""

    def __init__(self) -> None:
        self.sums: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.peaks: dict[int, dict[str, float]] = defaultdict(dict)

    def add(self, segment: int, values: dict[str, float]) -> None:
        """Fold one sample's numeric values in."""
        for k, v in values.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            self.sums[segment][k] += v
            self.counts[segment][k] += 1
            self.peaks[segment][k] = max(self.peaks[segment].get(k, v), v)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{segment: {mean_x, peak_x}}`` plus ``run`` over everything."""
        out: dict[str, dict[str, float]] = {}
        run_sum: dict[str, float] = defaultdict(float)
        run_cnt: dict[str, int] = defaultdict(int)
        run_peak: dict[str, float] = {}
        for seg in sorted(self.sums):
            d: dict[str, float] = {}
            for k, s in self.sums[seg].items():
                n = self.counts[seg][k]
                d[f"mean_{k}"] = s / n
                d[f"peak_{k}"] = self.peaks[seg][k]
                run_sum[k] += s
                run_cnt[k] += n
                run_peak[k] = max(run_peak.get(k, self.peaks[seg][k]), self.peaks[seg][k])
            out[str(seg)] = d
        out["run"] = {
            **{f"mean_{k}": run_sum[k] / run_cnt[k] for k in run_sum},
            **{f"peak_{k}": v for k, v in run_peak.items()},
        }
        return out


class Sampler:
    """Base class: ``sample()`` returns a typed sample; the thread publishes it to the bus and the writer."""

    name = "sampler"
    interval = 1.0
    final_reading = False
    """Take one more reading when told to stop (a source whose last state completes the run's figures)."""

    def __init__(self, bus: MetricsBus | None = None, writer: TelemetrySink | None = None) -> None:
        self.bus = bus
        self.writer = writer
        self.aggregate = SegmentAggregate()
        self.last: TelemetrySample | None = None
        self.readings = 0
        """Samples that came back with data (a source is available only if some did)."""
        self._stop = threading.Event()
        self._poke = threading.Event()
        self.poked = False
        """The reading being taken was asked for (:meth:`poke`), not due at the interval."""
        self._thread: threading.Thread | None = None

    def sample(self) -> TelemetrySample:
        """One reading (subclasses). Must not raise for expected conditions."""
        raise NotImplementedError

    def aggregate_values(self, sample: Any) -> dict[str, float]:
        """Fields kept as mean/peak per segment (subclasses)."""
        return {}

    def close(self) -> None:
        """Release the library (subclasses)."""

    def sample_once(self) -> TelemetrySample:
        """Take, publish and record one sample; exceptions become an :class:`Unavailable` sample."""
        try:
            s = self.sample()
        except Exception as exc:
            s = Unavailable(f"{type(exc).__name__}: {exc}")
        self.last = s
        segment = 0
        if self.bus is not None:
            self.bus.set_telemetry(self.name, s)
            segment = self.bus.current_segment()
        if s.available:
            self.readings += 1
            self.aggregate.add(segment, self.aggregate_values(s))
        if self.writer is not None:
            self.writer.add_telemetry({**sample_json(s), "time": time.time(), "source": self.name, "segment": segment})
        return s

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.sample_once()
            self.poked = self._poke.wait(max(0.05, self.interval - (time.monotonic() - t0)))
            self._poke.clear()
        if self.final_reading and self.readings:
            self.sample_once()
        self.close()

    def start(self) -> None:
        """Start sampling in a daemon thread (blocking libraries stay off the UI loop)."""
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"telemetry-{self.name}")
        self._thread.start()

    def poke(self, *_args: object) -> None:
        """Take the next reading now rather than at the interval."""
        self._poke.set()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(3.0)

    def summary(self) -> dict[str, object]:
        """Per-segment mean/peak for ``summary.json``; or why there was nothing."""
        if not self.readings:
            reason = self.last.reason if isinstance(self.last, Unavailable) else ""
            return {"available": False, "reason": reason or "no reading came back during the run"}
        return {"available": True, "segments": self.aggregate.summary()}

"""Inter-arrival times for open-loop load, with vLLM bench serve's semantics."""

from __future__ import annotations

import random


class Arrivals:
    """Gaps between request arrivals at ``rate`` per second.

    ``constant``: every 1/rate s. ``poisson``: exponential gaps. ``gamma``: shape = burstiness and
    scale = 1/(rate × burstiness), so the mean rate stays ``rate`` (burstiness 1 is Poisson, lower is burstier).
    """

    def __init__(self, rate: float, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        if burstiness <= 0:
            raise ValueError("burstiness must be > 0")
        self.rate = rate
        self.arrival = arrival
        self.burstiness = burstiness
        self._rng = random.Random(seed)

    def next_gap(self) -> float:
        """Seconds until the next arrival."""
        if self.arrival == "constant":
            return 1.0 / self.rate
        if self.arrival == "poisson":
            return self._rng.expovariate(self.rate)
        theta = 1.0 / (self.rate * self.burstiness)
        return self._rng.gammavariate(self.burstiness, theta)

"""Token-length distributions for prompts and outputs: fixed, uniform, normal, lognormal or an empirical histogram.

Spelled on the command line and in presets as ``512``, ``uniform:128,1024``, ``normal:512,64``,
``lognormal:512,0.6`` (median, sigma) or ``empirical:128=5,512=3,2048=1`` (length=weight). Every draw is a
whole number of at least 1 token and at most :data:`~llmsurge.engine.limits.MAX_COUNT`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from llmsurge.engine import limits

KINDS = ("fixed", "uniform", "normal", "lognormal", "empirical")
SPELLING = "N, uniform:A,B, normal:MEAN,SD, lognormal:MEDIAN,SIGMA or empirical:LEN=WEIGHT,…"


class LengthError(ValueError):
    """A length spelling that cannot be used; the message names the fix."""


@dataclass(frozen=True)
class LengthDist:
    """A distribution of token lengths. ``params``: (n,), (a, b), (mean, sd), (median, sigma) or the empirical
    lengths with ``weights``."""

    kind: str = "fixed"
    params: tuple[float, ...] = (256.0,)
    weights: tuple[float, ...] = ()

    @classmethod
    def fixed(cls, n: int) -> LengthDist:
        """Always ``n`` tokens."""
        return cls("fixed", (float(n),))

    @classmethod
    def parse(cls, text: str | int) -> LengthDist:
        """``512`` or ``kind:params``; :class:`LengthError` naming the accepted spellings otherwise."""
        if isinstance(text, bool):
            raise LengthError(f"{text!r} is not a length: use {SPELLING}")
        if isinstance(text, int):
            return cls._checked("fixed", (float(text),))
        s = str(text).strip().lower().replace(" ", "")
        kind, sep, rest = s.partition(":")
        if not sep:
            return cls._checked("fixed", (_number(s, s),))
        if kind not in KINDS:
            raise LengthError(f"{text!r}: unknown distribution {kind!r}; use {SPELLING}")
        if kind == "empirical":
            lengths, weights = [], []
            for part in filter(None, rest.split(",")):
                length, eq, weight = part.partition("=")
                lengths.append(_number(length, text))
                weights.append(_number(weight, text) if eq else 1.0)
            return cls._checked(kind, tuple(lengths), tuple(weights))
        return cls._checked(kind, tuple(_number(p, text) for p in rest.split(",") if p))

    @classmethod
    def _checked(cls, kind: str, params: tuple[float, ...], weights: tuple[float, ...] = ()) -> LengthDist:
        need = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2}
        spelled = f"{kind}:{','.join(f'{p:g}' for p in params)}"
        if kind in need and len(params) != need[kind]:
            raise LengthError(f"{spelled}: {kind} takes {need[kind]} number(s); use {SPELLING}")
        if kind == "empirical" and not params:
            raise LengthError(f"{spelled}: give at least one LEN=WEIGHT; use {SPELLING}")
        centre = params[0] if kind != "uniform" else params[1]
        lengths = params if kind == "empirical" else (centre,)
        if any(not 1 <= p <= limits.MAX_COUNT for p in lengths) or (kind == "uniform" and params[0] < 1):
            raise LengthError(f"{spelled}: lengths must be between 1 and {limits.MAX_COUNT:,} tokens")
        if kind == "uniform" and params[0] > params[1]:
            raise LengthError(f"{spelled}: the low end comes first (uniform:A,B with A <= B)")
        if kind in ("normal", "lognormal") and params[1] < 0:
            raise LengthError(f"{spelled}: the spread must be >= 0")
        if kind == "empirical" and (any(w < 0 for w in weights) or sum(weights) <= 0):
            raise LengthError(f"{spelled}: weights must be >= 0 and not all 0")
        return cls(kind, params, weights)

    @property
    def is_fixed(self) -> bool:
        """Whether every draw is the same length."""
        return self.kind == "fixed"

    @property
    def nominal(self) -> int:
        """The length a table shows for this distribution: the fixed length, the mean, or the median."""
        p = self.params
        if self.kind == "uniform":
            return round((p[0] + p[1]) / 2)
        if self.kind == "empirical":
            return round(sum(a * w for a, w in zip(p, self.weights, strict=True)) / sum(self.weights))
        return round(p[0])

    def sample(self, rng: random.Random) -> int:
        """One length, in tokens (>= 1)."""
        p = self.params
        if self.kind == "fixed":
            v = p[0]
        elif self.kind == "uniform":
            v = rng.uniform(p[0], p[1])
        elif self.kind == "normal":
            v = rng.gauss(p[0], p[1])
        elif self.kind == "lognormal":
            v = p[0] * math.exp(rng.gauss(0.0, p[1]))
        else:
            v = rng.choices(p, weights=self.weights)[0]
        return max(1, min(limits.MAX_COUNT, round(v)))

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{self.params[0]:g}"
        if self.kind == "empirical":
            return "empirical:" + ",".join(f"{a:g}={w:g}" for a, w in zip(self.params, self.weights, strict=True))
        return f"{self.kind}:{','.join(f'{p:g}' for p in self.params)}"


def _number(part: str, whole: object) -> float:
    try:
        v = float(part)
    except ValueError:
        raise LengthError(f"{whole!r}: {part!r} is not a number; use {SPELLING}") from None
    if not math.isfinite(v):
        raise LengthError(f"{whole!r}: {part!r} is not a finite number")
    return v

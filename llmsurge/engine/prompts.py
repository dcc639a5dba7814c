"""Prompts of a requested token length without a tokenizer, calibrated against the server's own count."""

from __future__ import annotations

import random
from dataclasses import dataclass

_WORDS = [
    "time",
    "year",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "river",
    "mountain",
    "garden",
    "window",
    "bridge",
    "engine",
    "signal",
    "market",
    "winter",
    "summer",
    "forest",
    "ocean",
    "island",
    "valley",
    "library",
    "kitchen",
    "planet",
    "theory",
    "camera",
    "pattern",
    "circle",
    "letter",
    "answer",
    "machine",
]


@dataclass(frozen=True)
class Calibration:
    """``prompt_tokens ≈ overhead + tokens_per_word × words`` as the server counts them."""

    tokens_per_word: float = 1.0
    overhead: float = 0.0
    measured: bool = False

    def words_for(self, tokens: int) -> int:
        """How many words make a prompt of about ``tokens`` tokens."""
        return max(1, round((tokens - self.overhead) / max(self.tokens_per_word, 0.05)))

    @classmethod
    def from_points(cls, words_a: int, tokens_a: int, words_b: int, tokens_b: int) -> Calibration:
        """Fit the line through two (words, prompt_tokens) measurements."""
        if words_b == words_a or tokens_b <= tokens_a:
            return cls()
        slope = (tokens_b - tokens_a) / (words_b - words_a)
        return cls(tokens_per_word=slope, overhead=max(0.0, tokens_a - slope * words_a), measured=True)


class PromptFactory:
    """Random-word prompts, different from the first word on, so prefix caches do not flatter results."""

    def __init__(self, calibration: Calibration, seed: int = 0) -> None:
        self.calibration = calibration
        self._rng = random.Random(seed)

    def words(self, n: int) -> str:
        """``n`` random words."""
        return " ".join(self._rng.choices(_WORDS, k=n))

    def prompt(self, input_tokens: int) -> str:
        """A prompt of about ``input_tokens`` tokens; its first word already differs between calls."""
        n = self.calibration.words_for(input_tokens)
        return self.words(n)

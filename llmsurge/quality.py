"""Is the output sane? A built-in set of short prompts with checkable answers, and a cheap test for degenerate text.

The set is offline and small (~30 items, temperature 0): arithmetic, "repeat exactly", counting, capitals, JSON with
given keys, a short Python function that must parse. An answer is judged by what it must contain, never by exact
wording, so a chatty but right model passes and a fast but wrong one (a broken quantization) does not.

:func:`degenerate_reason` looks at the tail of any answer for text no healthy model produces: one token or a short
n-gram repeated over and over, a single character streamed, replacement characters, or tokens counted with no text.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

QUALITY_THRESHOLD = 0.8
"""Below this share of correct answers ``llmsurge check`` says DEGRADED."""


@dataclass(frozen=True)
class QualityItem:
    """A prompt and how its answer is checked: ``kind`` is number, contains, json or python."""

    name: str
    prompt: str
    kind: str
    expected: str
    max_tokens: int = 64

    def answer(self) -> str:
        """A correct answer (the simulated server's, in its ``correct`` mode)."""
        if self.kind == "json":
            return json.dumps({k: 1 for k in self.expected.split(",")})
        if self.kind == "python":
            return f"```python\ndef {self.expected}(a, b):\n    return a + b\n```"
        return self.expected

    def wrong_answer(self) -> str:
        """A fluent but wrong answer (the simulated server's ``wrong`` mode: a broken quantization)."""
        if self.kind == "number":
            return str(int(self.expected) + 7)
        if self.kind == "json":
            return "{name: unquoted, 'broken': }"
        if self.kind == "python":
            return "def broken(:\n    return"
        return "I am not sure about that."


def _num(a: int, op: str, b: int) -> QualityItem:
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    return QualityItem(
        f"arith {a}{op}{b}", f"What is {a} {op} {b}? Answer with the number only.", "number", str(value), 16
    )


ITEMS: tuple[QualityItem, ...] = (
    _num(17, "+", 25),
    _num(123, "+", 456),
    _num(90, "-", 37),
    _num(12, "*", 12),
    _num(7, "*", 8),
    _num(1000, "-", 1),
    _num(48, "+", 52),
    _num(9, "*", 11),
    QualityItem("repeat code", "Repeat exactly, and nothing else: blue-7 zebra", "contains", "blue-7 zebra", 16),
    QualityItem("repeat word", "Repeat exactly, and nothing else: ostrich", "contains", "ostrich", 16),
    QualityItem(
        "repeat phrase",
        "Repeat exactly, and nothing else: the cat sat on the mat",
        "contains",
        "the cat sat on the mat",
        24,
    ),
    QualityItem("repeat digits", "Repeat exactly, and nothing else: 4815162342", "contains", "4815162342", 16),
    QualityItem(
        "count letters", "How many letters are in the word 'banana'? Answer with the number only.", "number", "6", 16
    ),
    QualityItem(
        "count items",
        "How many items are in this list: apple, pear, plum, fig? Answer with the number only.",
        "number",
        "4",
        16,
    ),
    QualityItem("count legs", "How many legs does a spider have? Answer with the number only.", "number", "8", 16),
    QualityItem("days in week", "How many days are in a week? Answer with the number only.", "number", "7", 16),
    QualityItem("capital france", "What is the capital of France? Answer in one word.", "contains", "Paris", 16),
    QualityItem("capital japan", "What is the capital of Japan? Answer in one word.", "contains", "Tokyo", 16),
    QualityItem("capital italy", "What is the capital of Italy? Answer in one word.", "contains", "Rome", 16),
    QualityItem("capital egypt", "What is the capital of Egypt? Answer in one word.", "contains", "Cairo", 16),
    QualityItem("capital canada", "What is the capital of Canada? Answer in one word.", "contains", "Ottawa", 16),
    QualityItem("opposite", "What is the opposite of 'hot'? Answer in one word.", "contains", "cold", 16),
    QualityItem("color", "What color is a clear daytime sky? Answer in one word.", "contains", "blue", 16),
    QualityItem("json person", 'Output only a JSON object with the keys "name" and "age".', "json", "name,age", 48),
    QualityItem("json point", 'Output only a JSON object with the keys "x", "y" and "z".', "json", "x,y,z", 48),
    QualityItem("json status", 'Output only a JSON object with the keys "ok" and "code".', "json", "ok,code", 48),
    QualityItem(
        "python add", "Write a Python function named add(a, b) that returns their sum. Code only.", "python", "add", 96
    ),
    QualityItem(
        "python plus", "Write a Python function named plus(a, b) that returns a + b. Code only.", "python", "plus", 96
    ),
    QualityItem("next number", "What number comes next: 2, 4, 6, 8? Answer with the number only.", "number", "10", 16),
    QualityItem("half", "What is half of 50? Answer with the number only.", "number", "25", 16),
)
BY_PROMPT = {item.prompt: item for item in ITEMS}


def judge(item: QualityItem, text: str) -> tuple[bool, str]:
    """Whether ``text`` answers ``item`` correctly, and if not, why (naming what came back). An echo of the
    prompt is not an answer (a base model repeats it): the prompt's own words are taken out first."""
    shown = " ".join(text.split())[:80] or "(empty)"
    text = text.replace(item.prompt, " ")
    if item.kind == "number":
        numbers = re.findall(r"-?\d[\d,]*", text)
        first = numbers[0].replace(",", "") if numbers else None
        return (first == item.expected, "" if first == item.expected else f"expected {item.expected}, got {shown!r}")
    if item.kind == "contains":
        ok = item.expected.lower() in text.lower()
        return ok, "" if ok else f"expected {item.expected!r} in {shown!r}"
    if item.kind == "json":
        match = re.search(r"\{.*\}", text, re.S)
        try:
            obj = json.loads(match.group(0)) if match else None
        except ValueError:
            obj = None
        keys = item.expected.split(",")
        ok = isinstance(obj, dict) and all(k in obj for k in keys)
        return ok, "" if ok else f"expected a JSON object with keys {', '.join(keys)}, got {shown!r}"
    if item.kind == "python":
        block = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.S)
        code = block.group(1) if block else text
        try:
            tree = ast.parse(code)
        except SyntaxError:
            return False, f"code that does not parse: {shown!r}"
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        ok = item.expected in names
        return ok, "" if ok else f"no function {item.expected}() in {shown!r}"
    raise ValueError(f"unknown check kind {item.kind!r}")


# ---- degenerate output ------------------------------------------------------------------------------------

TAIL_CHARS = 400
MIN_REPEATS = 8
"""An n-gram repeated this many times in a row at the end of an answer is a loop, not prose."""


def degenerate_reason(text: str, output_tokens: int = 0, reasoning: int = 0) -> str:
    """Why the end of an answer is degenerate ('' when it looks like text). Looks at the last few hundred
    characters only, so it costs little on every request."""
    tail = text[-TAIL_CHARS:]
    if not tail.strip():
        if output_tokens > 4 and not reasoning:
            return f"no text in {output_tokens} output tokens"
        return ""
    if tail.count("\ufffd") >= 3:
        return f"{tail.count(chr(0xFFFD))} replacement characters (broken decoding)"
    squeezed = tail.replace(" ", "").replace("\n", "")
    if len(squeezed) >= 32 and len(set(squeezed[-32:])) == 1:
        return f"one character repeated: {squeezed[-1]!r}"
    words = tail.split()
    for n in range(1, 9):
        if len(words) < n * MIN_REPEATS:
            break
        gram = words[-n:]
        repeats = 1
        i = len(words) - 2 * n
        while i >= 0 and words[i : i + n] == gram:
            repeats += 1
            i -= n
        if repeats >= MIN_REPEATS:
            return f"{' '.join(gram)[:40]!r} repeated {repeats} times"
    return ""

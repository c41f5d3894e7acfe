"""Pairwise judges: given a request and answers A and B, the probability that B is the better one.

- :class:`LocalJudge` reads the verdict from a local model's next-token probabilities (one forward
  pass per pair, on the hf or the vllm engine).
- :class:`OpenAIJudge` asks any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server) for a
  one-letter verdict, optionally weighted by the returned top logprobs.

Judges only see one order at a time; :mod:`humpback.evaluate.pairwise` asks for both orders of every pair so
that position bias cancels. A judge reports each verdict through a callback as soon as it has it,
so the caller can persist it: a crash or a failing endpoint never loses finished judgements.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class JudgeResult:
    annotations: list[dict]
    requested: int  # verdicts asked of the judge in this run
    reused: int  # verdicts taken from the cache
    failed: int  # verdicts the judge could not give (their pairs have no preference)
    reasons: tuple[str, ...] = ()  # why, one entry per distinct reason

    def missing_pairs(self) -> int:
        return sum(a["preference"] is None for a in self.annotations)


@dataclass(frozen=True)
class Verdict:
    p_b: float | None  # probability that answer B is better; None when the judgement failed
    raw: str  # the judge's reply (or the two probabilities), for audit
    error: str | None = None  # why p_b is None


# (instruction, answer A, answer B)
Pair = tuple[str, str, str]


OnVerdict = Callable[[int, Verdict], None]


class Judge(ABC):
    name: str

    @abstractmethod
    def judge(self, pairs: list[Pair], on_verdict: OnVerdict) -> None:
        """Call ``on_verdict(i, verdict)`` once for every pair, in any order."""


_VERDICT_RE = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")


def parse_verdict(text: str) -> str | None:
    """The first standalone A or B of a reply ("B", "**A**", "Answer B.", "A is better"), else None."""
    m = _VERDICT_RE.search(text or "")
    return m.group(1) if m else None


def verdict_from_logprobs(top_logprobs: list) -> float | None:
    """p(B) / (p(A) + p(B)) from the first token's top logprobs, or None if neither letter is there."""
    import math

    mass = {"A": 0.0, "B": 0.0}
    for entry in top_logprobs or []:
        token = (getattr(entry, "token", None) or "").strip().strip("*").upper()
        if token in mass:
            mass[token] += math.exp(entry.logprob)
    total = mass["A"] + mass["B"]
    return mass["B"] / total if total > 0 else None

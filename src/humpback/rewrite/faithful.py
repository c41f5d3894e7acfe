"""Is a rewrite faithful to its segment? Not a loop, word overlap both ways, a length ratio: each a named reason."""

from __future__ import annotations

import re
from dataclasses import dataclass

from humpback.data.config import RepetitionFilter
from humpback.data.filters import repeated_fraction
from humpback.rewrite.config import FaithfulnessConfig

_WORD = re.compile(r"[^\W_]+")
# what a chat model puts before the answer it was asked for ("Sure! Here is the rewritten answer:")
_LEAD_IN = re.compile(r"^\s*(?:sure|certainly|of course|okay|ok)?[!,.]?\s*here(?:'s| is)\b[^\n]{0,80}:\s*\n+",
                      re.IGNORECASE)

UNFAITHFUL_REASONS = ("empty", "repetitive", "low_overlap", "low_coverage", "too_short", "too_long")
_REPETITION = RepetitionFilter()  # the corpus's n-gram size and Jaccard, so a rewrite meets its segment's bar


@dataclass(frozen=True)
class Faithfulness:
    overlap: float  # share of the rewrite's distinct words found in the segment
    coverage: float  # share of the segment's distinct words the rewrite keeps
    length_ratio: float  # characters of the rewrite / characters of the segment
    problem: str | None  # one of UNFAITHFUL_REASONS, or None


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def strip_lead_in(text: str) -> tuple[str, bool]:
    """The rewrite without a first line like "Here is the rewritten answer:"; and whether there was one."""
    stripped = _LEAD_IN.sub("", text, count=1)
    return stripped.strip(), stripped != text


def faithfulness(rewrite: str, segment: str, cfg: FaithfulnessConfig) -> Faithfulness:
    """The measures of ``rewrite`` against ``segment``, and the first check it fails (in
    UNFAITHFUL_REASONS order), if any."""
    new, old = _words(rewrite), _words(segment)
    overlap = len(new & old) / len(new) if new else 0.0
    coverage = len(new & old) / len(old) if old else 0.0
    ratio = len(rewrite) / len(segment) if segment else 0.0
    problem = None
    if not rewrite.strip() or not new:
        problem = "empty"
    elif cfg.max_repeated_fraction is not None and repeated_fraction(
            rewrite, _REPETITION.ngram, _REPETITION.jaccard) > cfg.max_repeated_fraction:
        problem = "repetitive"
    elif cfg.min_overlap is not None and overlap < cfg.min_overlap:
        problem = "low_overlap"
    elif cfg.min_coverage is not None and coverage < cfg.min_coverage:
        problem = "low_coverage"
    elif cfg.min_length_ratio is not None and ratio < cfg.min_length_ratio:
        problem = "too_short"
    elif cfg.max_length_ratio is not None and ratio > cfg.max_length_ratio:
        problem = "too_long"
    return Faithfulness(round(overlap, 4), round(coverage, 4), round(ratio, 4), problem)

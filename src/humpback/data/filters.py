"""Segment quality filters with the paper's rules (v3 App. E); each returns a drop reason or None.

Reasons are stable strings: they are the keys of ``metrics/corpus.json``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from humpback.data.config import CorpusConfig, HeaderFilter, LanguageFilter, RepetitionFilter


def header_reason(header: str, cfg: HeaderFilter, allow_headerless: bool = False) -> str | None:
    if not header.strip():
        return None if allow_headerless or not cfg.drop_empty else "empty_header"
    letters = [c for c in header if c.isalpha()]
    if cfg.drop_all_caps and len(letters) >= 2 and all(c.isupper() for c in letters):
        return "all_caps_header"
    if _blocked_pattern(tuple(cfg.blocked_words)).search(header):
        return "navigation_header"
    return None


@lru_cache(maxsize=8)
def _blocked_pattern(words: tuple[str, ...]) -> re.Pattern:
    if not words:
        return re.compile(r"(?!x)x")  # matches nothing
    alts = "|".join(r"\s+".join(map(re.escape, w.split())) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alts})\b", re.IGNORECASE)


def length_reason(text: str, min_chars: int, max_chars: int) -> str | None:
    if len(text) < min_chars:
        return "too_short"
    if len(text) > max_chars:
        return "too_long"
    return None


# what a sentence and a word are, here and for the MinHash shingles (humpback.data.steps.Words)
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"\w+")


def repeated_fraction(text: str, ngram: int, jaccard: float) -> float:
    """Share of sentences whose word n-gram set has Jaccard >= ``jaccard`` with an earlier one."""
    grams = []
    for sentence in SENTENCE_SPLIT.split(text):
        words = WORD.findall(sentence.lower())
        if not words:
            continue
        if len(words) < ngram:
            grams.append({tuple(words)})
        else:
            grams.append({tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1)})
    if len(grams) < 2:
        return 0.0
    repeated = 0
    for i in range(1, len(grams)):
        a = grams[i]
        for b in grams[:i]:
            if len(a & b) / len(a | b) >= jaccard:
                repeated += 1
                break
    return repeated / len(grams)


def repetition_reason(text: str, cfg: RepetitionFilter) -> str | None:
    if repeated_fraction(text, cfg.ngram, cfg.jaccard) > cfg.max_repeated_fraction:
        return "repetitive"
    return None


@lru_cache(maxsize=1)
def _language_identifier():
    from humpback.data.language_model import load_identifier

    return load_identifier()


def detect_language(text: str) -> tuple[str, float]:
    lang, prob = _language_identifier().classify(text)
    return lang, float(prob)


def language_reason(text: str, cfg: LanguageFilter) -> str | None:
    lang, prob = detect_language(text)
    if lang != cfg.lang or prob < cfg.min_prob:
        return "wrong_language"
    return None


def segment_reason(header: str, text: str, cfg: CorpusConfig) -> str | None:
    """First failing filter, cheapest first; None when the segment passes them all."""
    return (
        header_reason(header, cfg.header, cfg.allow_headerless)
        or length_reason(text, cfg.min_chars, cfg.max_chars)
        or repetition_reason(text, cfg.repetition)
        or language_reason(text, cfg.language)
    )

"""Hygiene: what a generation must not be to count as an instruction, each by a named rule."""

from __future__ import annotations

import logging
import re

from humpback.augment.config import HygieneConfig
from humpback.prompts import PLACEHOLDER

log = logging.getLogger(__name__)


_WORD = re.compile(r"\w+")


DROP_REASONS = ("empty", "echoes_prompt", "copies_segment")


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def hygiene_problem(instruction: str, segment: str, template: str, cfg: HygieneConfig) -> str | None:
    """Why a cleaned generation is no instruction (one of DROP_REASONS), or None: empty; sharing
    ``cfg.prompt_words`` consecutive words with the prompt's own text (the template without the
    segment: the model echoes its prompt); sharing ``cfg.segment_words`` consecutive words with
    its segment (it copies the text instead of asking for it)."""
    if not instruction:
        return "empty"
    if cfg.prompt_words and _ngrams(instruction, cfg.prompt_words) & _ngrams(template.replace(PLACEHOLDER, "\n"),
                                                                            cfg.prompt_words):
        return "echoes_prompt"
    if cfg.segment_words and _ngrams(instruction, cfg.segment_words) & _ngrams(segment, cfg.segment_words):
        return "copies_segment"
    return None


def clean_instruction(text: str, max_chars: int) -> tuple[str, bool]:
    """Strip whitespace and wrapping quotes; cut at ``max_chars``. Returns (text, was_cut)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if len(text) > max_chars:
        return text[:max_chars].rstrip(), True
    return text, False

"""Hygiene: what a generation must not be to count as an instruction, each by a named rule."""

from __future__ import annotations

import logging
import re

from humpback.augment import form
from humpback.augment.config import HygieneConfig
from humpback.prompts import PLACEHOLDER

log = logging.getLogger(__name__)


_WORD = re.compile(r"\w+")


DROP_REASONS = ("empty", "echoes_prompt", "copies_segment", "copies_opening", "describes_text", "continues_text",
                "text_label", "list_fragment", "symbol_noise")
UNWRAP_NAMES = tuple(name for name, _, _ in form.UNWRAP_RULES)


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def hygiene_problem(instruction: str, segment: str, template: str, cfg: HygieneConfig) -> str | None:
    """Why a cleaned generation is no instruction (one of DROP_REASONS), or None: empty; sharing
    ``cfg.prompt_words`` consecutive words with the prompt's own text (the template without the
    segment: the model echoes its prompt); sharing ``cfg.segment_words`` consecutive words with
    its segment (it copies the text instead of asking for it); opening with the segment's first
    ``cfg.opening_words`` words; a description of the text ("This is an example of ..."), a continuation
    of it ("To add to the previous text, ..."), a labelled text ("Text: ...", "Answer: ..."), a list
    item; symbol noise (fewer than ``cfg.min_words`` words or a letter share under
    ``cfg.min_letter_share``). Each rule but the first is off with its param null/false."""
    if not instruction:
        return "empty"
    if (cfg.min_words and len(form.opening_words(instruction, cfg.min_words)) < cfg.min_words) or (
            cfg.min_letter_share and form.letter_share(instruction) < cfg.min_letter_share):
        return "symbol_noise"
    if cfg.prompt_words and _ngrams(instruction, cfg.prompt_words) & _ngrams(template.replace(PLACEHOLDER, "\n"),
                                                                            cfg.prompt_words):
        return "echoes_prompt"
    if cfg.segment_words and _ngrams(instruction, cfg.segment_words) & _ngrams(segment, cfg.segment_words):
        return "copies_segment"
    if cfg.opening_words and form.opening_words(instruction, cfg.opening_words) == form.opening_words(
            segment, cfg.opening_words) and len(form.opening_words(segment, cfg.opening_words)) == cfg.opening_words:
        return "copies_opening"
    for reason, pattern, on in (("describes_text", form.DESCRIBES_TEXT, cfg.describes_text),
                                ("continues_text", form.CONTINUES_TEXT, cfg.continues_text),
                                ("text_label", form.TEXT_LABEL, cfg.text_label),
                                ("list_fragment", form.LIST_FRAGMENT, cfg.list_fragment)):
        if on and pattern.match(instruction):
            return reason
    return None


def clean_instruction(text: str, max_chars: int, unwrap: bool = True) -> tuple[str, bool, list[str]]:
    """Strip whitespace and what the model wrapped around the request (:data:`form.UNWRAP_RULES`:
    "Here is the instruction:", "Instruction:", quotes, "The text answers the question \"...\""; with
    ``unwrap`` false only surrounding quotes); cut at ``max_chars``. Returns (text, was_cut, rules fired)."""
    text, fired = text.strip(), []
    if unwrap:
        text, fired = form.unwrap(text)
    elif len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if len(text) > max_chars:
        return text[:max_chars].rstrip(), True, fired
    return text, False, fired

"""The `augment` section: sampling of instructions and the hygiene rules that drop what is no instruction."""

from __future__ import annotations

from humpback.core.config import PositiveInt, Section
from humpback.models.config import GenerationConfig


class HygieneConfig(Section):
    # A generation sharing a run of this many consecutive words (case and punctuation ignored) with
    # the backward prompt's own text echoes the prompt, not a request; null = no check.
    prompt_words: PositiveInt | None = 6
    # ... or with its own segment copies the text instead of asking for it; null = no check.
    segment_words: PositiveInt | None = 12


class AugmentConfig(Section):
    generation: GenerationConfig = GenerationConfig(max_new_tokens=48, batch_size=16)  # demo: one batch
    max_instruction_chars: PositiveInt = 2000  # longer generations are cut (and counted)
    hygiene: HygieneConfig = HygieneConfig()  # generations dropped (counted by reason) before curation

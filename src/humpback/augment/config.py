"""The `augment` section: sampling of instructions and the hygiene rules that drop what is no instruction."""

from __future__ import annotations

from pydantic import Field

from humpback.core.config import PositiveInt, Section
from humpback.models.config import GenerationConfig


class HygieneConfig(Section):
    # A generation sharing a run of this many consecutive words (case and punctuation ignored) with
    # the backward prompt's own text echoes the prompt, not a request; null = no check.
    prompt_words: PositiveInt | None = 6
    # ... or with its own segment copies the text instead of asking for it; null = no check.
    segment_words: PositiveInt | None = 12
    # ... opens with its segment's first this many words (the segment's header or first line): a copy
    opening_words: PositiveInt | None = 4
    # fewer words than this, or a smaller share of letters among non-space characters: symbol noise
    min_words: PositiveInt | None = 2
    min_letter_share: float | None = Field(default=0.5, ge=0, le=1)
    # phrase rules (augment/form.py): "This is an example of ...", "To add to the previous text, ...",
    # "Text: ..." / "Answer: ...", "1. ..." / "- ...": not requests; false = no check
    describes_text: bool = True
    continues_text: bool = True
    text_label: bool = True
    list_fragment: bool = True
    # strip what the model wraps around a request ("Here is the instruction:", "Instruction:", quotes,
    # 'The text answers the question "..."'), counted per rule in metrics/augment.json
    unwrap: bool = True


class AugmentConfig(Section):
    generation: GenerationConfig = GenerationConfig(max_new_tokens=48, batch_size=16)  # demo: one batch
    max_instruction_chars: PositiveInt = 2000  # longer generations are cut (and counted)
    hygiene: HygieneConfig = HygieneConfig()  # generations dropped (counted by reason) before curation

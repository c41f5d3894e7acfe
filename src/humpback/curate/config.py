"""The `curate` section: how the curator rates pairs, the curator check, and the threshold k of A_k."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from humpback.core.config import NonNegInt, PositiveInt, Section
from humpback.models.config import GenerationConfig

SCORES = (1, 2, 3, 4, 5)  # the curator's rating scale (the paper's 5-point rubric)


class CurateConfig(Section):
    # generate: sample a rating with reasoning and parse its last "Score: n" (the paper's way);
    # logits:   one forward pass, probabilities of "1".."5" right after "Score: " (no sampling).
    scorer: Literal["generate", "logits"] = "logits"  # demo; the paper's way: generate
    template: str | None = None  # null = src/humpback/prompts/rate.txt; needs {instruction} and {response}
    generation: GenerationConfig = GenerationConfig(max_new_tokens=256)
    batch_size: PositiveInt = 8  # logits scorer
    # A_k = pairs with score >= threshold (the paper: k = 5). A float is allowed with
    # use_expected_score, which compares the logits scorer's expected score instead of its argmax.
    # demo: 3.6 on the expected score (a 135M curator rates almost every pair 5); the paper: 5
    threshold: Annotated[float, Field(ge=1, le=5)] = 3.6
    use_expected_score: bool = True
    max_selected: PositiveInt | None = None  # optional cap, drawn in a seeded order
    sample_seed: int = 0
    # Curator check in every score@i: this many candidates (drawn with sample_seed) each give two
    # negative pairs (another candidate's segment; its own segment cut mid-way), rated like the
    # candidates; metrics/score/iter<i>.json reports the ROC AUC of real against negative pairs.
    # 0 turns it off. demo: 4 (8 extra ratings); the paper profile: 100
    negatives: NonNegInt = 4

    @model_validator(mode="after")
    def _threshold(self) -> "CurateConfig":
        if self.use_expected_score and self.scorer != "logits":
            raise ValueError("use_expected_score needs scorer: logits (only it gives an expected score)")
        if not self.use_expected_score and self.threshold != int(self.threshold):
            raise ValueError(f"threshold {self.threshold} is not an integer score 1..5 "
                             "(a fractional threshold needs scorer: logits and use_expected_score: true)")
        return self

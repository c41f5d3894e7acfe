"""The `rewrite` section: the optional rewrite@i step after select@i (off by default)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from humpback.core.config import Fraction, PositiveInt, Section
from humpback.models.config import EndpointConfig, GenerationConfig


class RewriteGeneration(GenerationConfig):
    # hf, vllm: the model folder `rewrite.model`; openai: the endpoint `rewrite.openai` (any
    # OpenAI-compatible server: OpenAI, a vLLM or llama.cpp server)
    engine: Literal["hf", "vllm", "openai"] = "hf"


class FaithfulnessConfig(Section):
    """What a rewrite must keep of its segment; null = no check. Words are lowercased letter/digit runs."""

    # share of the rewrite's sentences that nearly repeat an earlier one, by the corpus's own rule (word
    # 3-gram Jaccard >= 0.7, data/filters.py): above it, the model looped (a small model's commonest failure)
    max_repeated_fraction: Fraction | None = 0.3
    # share of the rewrite's distinct words that occur in the segment: below it, the rewrite says
    # things the segment does not (invented content)
    min_overlap: Fraction | None = 0.5
    # share of the segment's distinct words that the rewrite keeps: below it, the facts are lost
    min_coverage: Fraction | None = 0.2
    # rewrite length / segment length, in characters
    min_length_ratio: Annotated[float, Field(gt=0)] | None = 0.2
    max_length_ratio: Annotated[float, Field(gt=0)] | None = 2.0

    @model_validator(mode="after")
    def _ratio_range(self) -> "FaithfulnessConfig":
        if self.min_length_ratio and self.max_length_ratio and self.min_length_ratio > self.max_length_ratio:
            raise ValueError(f"min_length_ratio {self.min_length_ratio} is above max_length_ratio {self.max_length_ratio}")
        return self


class RewriteConfig(Section):
    # true: rewrite@i rewrites the curated responses and train@i trains on the rewrites; false: rewrite@i
    # writes an empty set and train@i trains on the curated responses as they are. One switch, so
    # `dvc exp run -S rewrite.enabled=true` is the ablation.
    enabled: bool = False
    model: str = "models/base"  # hf, vllm: the aligned model's folder (a DVC dependency of rewrite@i)
    template: str | None = None  # null = src/humpback/prompts/rewrite.txt; needs {instruction} and {response}
    # greedy by default: a pair's rewrite then does not depend on the pairs batched with it
    generation: RewriteGeneration = RewriteGeneration(temperature=0.0, max_new_tokens=512)
    openai: EndpointConfig = EndpointConfig()
    faithfulness: FaithfulnessConfig = FaithfulnessConfig()
    # a rewrite that fails the check: drop the pair, or keep it with its original response
    unfaithful: Literal["drop", "original"] = "drop"
    # pairs per engine call: each call's rewrites are saved at once, so a kill loses at most one
    chunk_size: PositiveInt = 64

"""Every model call behind one factory: :class:`EngineSpec` says which model runs on which engine.

A stage builds one ``EngineSpec`` from its generation section (and the top-level ``vllm`` section)
and gets from it the sampling settings, the identity that goes into its shard keys, a text
generator (:class:`GenerationEngine`) and a reader of choice probabilities
(:class:`humpback.models.base.ChoiceReader`). The engine, ``hf`` (transformers) or ``vllm``, is
a setting: no stage knows which one runs.

An engine takes chat conversations and sampling settings and returns one completion per
conversation, in input order. Within a call, results depend only on the inputs, the model, the
engine and ``Sampling.seed``, so a stage that seeds each shard separately reproduces each shard.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from humpback.models.base import GenerationEngine, Sampling
from humpback.models.config import GenerationConfig, VLLMConfig
from humpback.models.hf import HFEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSpec:
    """Which model, on which engine, with which settings: the one way a stage gets a model to run."""

    model_dir: str | Path
    generation: GenerationConfig = GenerationConfig()
    vllm: VLLMConfig = field(default_factory=VLLMConfig)

    @property
    def engine(self) -> str:
        return self.generation.engine

    def resolved(self) -> "EngineSpec":
        """The same spec with an absolute model path: valid in a Ray worker, whose working folder differs."""
        spec = copy.copy(self)  # a copy, not dataclasses.replace: subclasses keep what they hold
        object.__setattr__(spec, "model_dir", Path(self.model_dir).resolve())
        return spec

    def sampling(self, seed: int | None = None) -> Sampling:
        """The section's sampling settings; ``seed`` (a shard's) replaces the section's seed."""
        g = self.generation
        return Sampling(g.temperature, g.top_p, g.max_new_tokens, g.seed if seed is None else seed)

    def identity(self) -> dict:
        """What of the engine can change outputs, merged into every shard key and verdict key.

        Empty for hf: keys made before the engine was a setting were all hf, and stay valid."""
        if self.engine == "hf":
            return {}
        return {"engine": self.engine, **(self.vllm.identity() if self.engine == "vllm" else {})}

    def generator(self) -> GenerationEngine:
        g = self.generation
        if g.engine == "vllm":
            from humpback.models.vllm import VLLMEngine

            return VLLMEngine(self.model_dir, g, self.vllm)
        if g.engine == "hf":
            return HFEngine(self.model_dir, g.batch_size, g.precision, g.max_input_tokens)
        raise ValueError(f"unknown generation engine {g.engine!r} (available: hf, vllm)")

    def choice_reader(self, choices: Sequence[str], prefix: str, batch_size: int | None = None):
        """A :class:`~humpback.models.base.ChoiceReader` for the forced answer start ``prefix``."""
        g = self.generation
        if g.engine == "vllm":
            from humpback.models.vllm import VLLMChoiceReader

            return VLLMChoiceReader(self.model_dir, choices, prefix, g, self.vllm)
        from humpback.models.hf import HFChoiceReader

        return HFChoiceReader(self.model_dir, choices, prefix, batch_size or g.batch_size, g.precision,
                              g.max_input_tokens)

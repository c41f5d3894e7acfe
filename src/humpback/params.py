"""params.yaml as a whole: every step's section assembled, and the checks that span sections.

The stages load only their own sections (:func:`humpback.core.config.load_sections`); this module
is for the whole-file check every stage runs first (a typo anywhere fails before any work),
``humpback check-params``, the profiles and the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, model_validator

from humpback.augment.config import AugmentConfig
from humpback.core.config import ITERATIONS, Iterations, Loaded, RayConfig, read_params, validate
from humpback.curate.config import CurateConfig
from humpback.data.config import CorpusConfig, CorpusRunConfig, RawConfig, SeedConfig
from humpback.evaluate.config import EvaluateConfig
from humpback.models.config import ModelConfig, VLLMConfig
from humpback.prompts.config import PromptsConfig
from humpback.report.config import ScalingConfig
from humpback.rewrite.config import RewriteConfig
from humpback.tracking.config import MlflowConfig
from humpback.train.config import TRAIN_BACKWARD_DEMO, TrainConfig, backward_recipe


class Config(Loaded):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig = ModelConfig()
    seed: SeedConfig = SeedConfig()
    raw: RawConfig = RawConfig()
    corpus: CorpusConfig = CorpusConfig()
    corpus_run: CorpusRunConfig = CorpusRunConfig()
    prompts: PromptsConfig = PromptsConfig()
    train: TrainConfig = TrainConfig()
    train_backward: dict[str, Any] = TRAIN_BACKWARD_DEMO
    augment: AugmentConfig = AugmentConfig()
    curate: CurateConfig = CurateConfig()
    rewrite: RewriteConfig = RewriteConfig()
    iterations: Iterations = ITERATIONS[1]
    evaluate: EvaluateConfig = EvaluateConfig()
    scaling: ScalingConfig = ScalingConfig()
    vllm: VLLMConfig = VLLMConfig()
    ray: RayConfig = RayConfig()
    mlflow: MlflowConfig = MlflowConfig()

    def __eq__(self, other) -> bool:
        """Equal settings are equal configs, however they were written (defaults spelt out or not)."""
        if not isinstance(other, Config):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @model_validator(mode="after")
    def _across_sections(self) -> "Config":
        keys = sorted(self.iterations)
        known = {"base"} | {f"m{i}" for i in [0, *keys]}
        unknown = [m for m in self.evaluate.models if m not in known]
        if unknown:
            raise ValueError(f"evaluate.models: {unknown} are not trained by this pipeline (iterations give "
                             f"{sorted(known)}); add the iteration or drop the model")
        backward_recipe(self.train, self.train_backward)  # M_yx's recipe is valid too
        if self.scaling.iteration is not None and self.scaling.iteration not in self.iterations:
            raise ValueError(f"scaling.iteration {self.scaling.iteration} is not in iterations {keys}")
        return self


def parse_config(data: dict | None, source: str = "params.yaml") -> Config:
    """Validate a whole params mapping; raise :class:`~humpback.core.config.ConfigError` naming every bad key."""
    return validate(Config, data, source)


def load_config(path: str | Path = "params.yaml") -> Config:
    return parse_config(read_params(path), source=str(path))

"""The `evaluate` section: the eval set, the models compared, their answers and the judge."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from humpback.core.config import PositiveInt, Section
from humpback.evaluate.judges.config import JudgeConfig
from humpback.models.config import GenerationConfig


class EvalSetConfig(Section):
    # local: a .jsonl/.json/.parquet file of prompts (the demo set: data/demo/eval.jsonl);
    # alpaca_eval: AlpacaEval's prompts with their reference outputs, from `hub_dataset` when set,
    # else from `path` (a local copy in AlpacaEval's JSON format). `path` is a DVC dependency of
    # eval_set either way (like seed.path), so it must name an existing file.
    source: Literal["local", "alpaca_eval"] = "local"
    path: str = "data/demo/eval.jsonl"
    hub_dataset: str | None = None  # e.g. tatsu-lab/alpaca_eval
    hub_file: str = "alpaca_eval.json"  # AlpacaEval 1.0: text-davinci-003 references (the paper's)
    instruction_column: str = "instruction"
    reference_column: str | None = "output"  # absent or null: no reference outputs in the set
    max_prompts: PositiveInt | None = 12  # the first n prompts (demo; null = all)

    @model_validator(mode="after")
    def _where(self) -> "EvalSetConfig":
        if self.hub_dataset and self.source != "alpaca_eval":
            raise ValueError("hub_dataset is for source alpaca_eval")
        return self


class EvaluateConfig(Section):
    set: EvalSetConfig = EvalSetConfig()
    # The models that answer the eval set and are judged (answer@m, evaluate@m): base, m0, m1, ...
    models: list[str] = ["m0", "m2"]  # demo: the reference and the last model
    # What every model is compared with: one of `models`, or `dataset` (the set's reference outputs,
    # e.g. text-davinci-003 for AlpacaEval 1.0). The paper's question: does M_i beat seed-only M0?
    reference: str = "m0"
    # The paper's best inference prompt (Table 8): both tags. Placed as prompts.tag_placement says.
    inference_tag: str | None = "Answer in the style of an AI Assistant. Answer with knowledge from web search."
    generation: GenerationConfig = GenerationConfig(max_new_tokens=48, batch_size=16)  # demo: short answers
    judge: JudgeConfig = JudgeConfig()
    # The share of pairs that may stay without a verdict (the judge endpoint failed them) for
    # evaluate@m to finish; the metrics then say how many. Above it, the stage keeps its verdicts and
    # exits non-zero, so DVC records nothing and the next `dvc repro` asks only for the missing ones.
    max_failed_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    lc_splits: Annotated[int, Field(ge=2)] = 5  # cross-validation folds of the length-controlled GLM
    # Optional CSV of per-prompt difficulty (AlpacaEval's instruction_difficulty.csv: prompt index,
    # difficulty) for the LC GLM's difficulty term; null = the offline form without it.
    instruction_difficulty: str | None = None

    @model_validator(mode="after")
    def _names(self) -> "EvaluateConfig":
        bad = [m for m in self.models if not re.fullmatch(r"base|m\d+", m)]
        if bad:
            raise ValueError(f"models: {bad} are not pipeline models (allowed: base, m0, m1, ...)")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models: {self.models} lists a model twice")
        if self.reference != "dataset" and self.reference not in self.models:
            raise ValueError(f"reference {self.reference!r} must be one of models {self.models} or 'dataset'")
        return self

"""answer@m: a model answers every prompt of the eval set, through the engine factory, one keyed unit per run."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa

from humpback.core.cluster import Job, Unit, run_units
from humpback.core.config import RayConfig
from humpback.evaluate.config import EvaluateConfig
from humpback.evaluate.sets import model_outputs
from humpback.models.engine import EngineSpec
from humpback.prompts import forward_messages
from humpback.prompts.config import PromptsConfig

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- answer@m
@dataclass
class AnswerJob(Job):
    """Eval prompts (instruction) -> outputs (settings only: it may run on a Ray worker)."""

    spec: EngineSpec
    cfg: EvaluateConfig
    prompts: PromptsConfig

    def setup(self) -> None:
        self.engine = self.spec.generator()

    def run(self, rows: pa.Table, key: str, progress) -> pa.Table:
        convs = [forward_messages(i, self.cfg.inference_tag, self.prompts) for i in rows["instruction"].to_pylist()]
        texts = self.engine.generate(convs, self.spec.sampling(), progress)  # the section's seed
        return pa.table({"output": [t.strip() for t in texts]})


def answer(rows: list[dict], spec: EngineSpec, cfg: EvaluateConfig, prompts: PromptsConfig,
           generator: str, progress: bool = True, ray: RayConfig = RayConfig()) -> list[dict]:
    """Every prompt answered once, with the inference tag, in AlpacaEval's model-outputs format.
    One unit: an eval set is small, and one engine call keeps the answers those of a single run."""
    from tqdm.auto import tqdm

    prompts_table = pa.table({"instruction": [r["instruction"] for r in rows]})
    texts: list[str] = []
    with tqdm(total=len(rows), desc=f"answer {generator}", unit="prompt", disable=not progress) as bar:
        run_units(AnswerJob(spec.resolved(), cfg, prompts),
                  [Unit(generator, "", len(rows), lambda: prompts_table, lambda t: texts.extend(t["output"].to_pylist()))],
                  ray, bar.update)
    return model_outputs(rows, texts, generator)

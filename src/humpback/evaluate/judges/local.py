"""A local model as the judge: the verdict token's probability from its logits (hf or vllm engine)."""

from __future__ import annotations

import logging

from humpback.evaluate.judges.base import Judge, Verdict
from humpback.evaluate.judges.config import JudgeConfig
from humpback.models.config import GenerationConfig, VLLMConfig
from humpback.models.engine import EngineSpec
from humpback.prompts import judge_messages

log = logging.getLogger(__name__)


class LocalJudge(Judge):
    """A local causal LM (hf or vllm engine): the prompt ends with "Better answer:" and p(" A") vs
    p(" B") at the next token is the verdict."""

    PREFIX = "Better answer:"
    CHOICES = (" A", " B")

    def __init__(self, spec: EngineSpec, template: str, chunk: int = 32):
        self.reader = spec.choice_reader(self.CHOICES, self.PREFIX)
        self.template, self.chunk = template, chunk
        self.name = f"{spec.engine}:{spec.model_dir}"

    def judge(self, pairs, on_verdict):
        # chunks: verdicts reach the caller (and its cache) every `chunk` pairs, not only at the end
        for start in range(0, len(pairs), self.chunk):
            convs = [judge_messages(*p, self.template) for p in pairs[start : start + self.chunk]]
            for offset, (p_a, p_b) in enumerate(self.reader.probabilities(convs)):
                on_verdict(start + offset, Verdict(p_b, f"A={p_a:.6f} B={p_b:.6f}"))


def local_spec(cfg: JudgeConfig, vllm: VLLMConfig | None = None) -> EngineSpec:
    """The judge's model as an engine spec (judge kind hf or vllm)."""
    g = GenerationConfig(engine=cfg.kind, batch_size=cfg.batch_size, precision=cfg.precision,
                         max_input_tokens=cfg.max_input_tokens)
    return EngineSpec(cfg.model, g, vllm or VLLMConfig())

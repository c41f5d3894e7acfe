"""The one place that builds a judge from its config, and the identity that keys its verdicts."""

from __future__ import annotations

import logging

from humpback.evaluate.judges.base import Judge
from humpback.evaluate.judges.config import JudgeConfig
from humpback.evaluate.judges.local import LocalJudge, local_spec
from humpback.evaluate.judges.remote import OpenAIJudge
from humpback.models.config import VLLMConfig

log = logging.getLogger(__name__)


def judge_identity(cfg: JudgeConfig, template: str, vllm: VLLMConfig | None = None) -> dict:
    """Everything that makes a judge's verdicts what they are: the key of cached verdicts."""
    if cfg.kind == "alpaca_eval":  # its own cache is keyed on its annotator's name; this keys ours (scaling)
        return {"kind": "alpaca_eval", "annotator": cfg.alpaca_eval.annotator, "model": cfg.alpaca_eval.model,
                "base_url": cfg.openai.base_url}
    if cfg.kind != "openai":
        from humpback.core.keys import path_md5

        return {"kind": cfg.kind, "model": path_md5(cfg.model), "template": template, "prefix": LocalJudge.PREFIX,
                "max_input_tokens": cfg.max_input_tokens, **local_spec(cfg, vllm).identity()}
    o = cfg.openai
    return {"kind": "openai", "base_url": o.base_url, "model": o.model, "template": template,
            "logprobs": o.logprobs, "max_tokens": o.max_tokens}


def make_judge(cfg: JudgeConfig, template: str, vllm: VLLMConfig | None = None) -> Judge:
    if cfg.kind == "alpaca_eval":
        raise ValueError("the alpaca_eval judge runs through humpback.evaluate.pairwise.judge_pairs, not as a Judge")
    if cfg.kind == "openai":
        return OpenAIJudge(cfg, template)
    return LocalJudge(local_spec(cfg, vllm), template)

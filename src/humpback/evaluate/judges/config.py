"""The `evaluate.judge` section: which judge compares two answers (hf, vllm, openai, alpaca_eval)."""

from __future__ import annotations

from typing import Literal

from humpback.core.config import PositiveInt, Section
from humpback.models.config import EndpointConfig


class OpenAIJudgeConfig(EndpointConfig):
    # the endpoint's settings (models/config.py), and what the judge asks of it
    logprobs: bool = False  # ask for top logprobs of the verdict token: a weighted preference
    max_tokens: PositiveInt = 8


class AlpacaEvalJudgeConfig(Section):
    # One of the installed alpaca_eval's annotator configurations: weighted_alpaca_eval_gpt4_turbo is
    # AlpacaEval 2.0's (the leaderboard's), alpaca_eval_gpt4 is 1.0's (the paper's table). Its
    # endpoint, key variable, timeout, retries and concurrency come from `openai` below.
    annotator: str = "weighted_alpaca_eval_gpt4_turbo"
    model: str | None = None  # null = the configuration's own model; a served model's name for a local server


class JudgeConfig(Section):
    # hf: a local model compares two answers; the probability of each verdict token comes from the
    #     logits (one forward pass per order). vllm: the same through vLLM (its logprobs; settings in
    #     the top-level `vllm` section). openai: an OpenAI-compatible endpoint with our judge prompt.
    # alpaca_eval: AlpacaEval's own annotator (prompt, parser, one order per pair) on the `openai`
    #     endpoint, through the alpaca_eval package (pip install 'humpback[alpaca-eval]').
    kind: Literal["hf", "vllm", "openai", "alpaca_eval"] = "hf"
    model: str = "models/base"  # hf, vllm: a model folder (a DVC dependency of evaluate)
    template: str | None = None  # null = src/humpback/prompts/judge.txt; {instruction} {output_a} {output_b}
    batch_size: PositiveInt = 8
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    max_input_tokens: PositiveInt = 2048
    openai: OpenAIJudgeConfig = OpenAIJudgeConfig()
    alpaca_eval: AlpacaEvalJudgeConfig = AlpacaEvalJudgeConfig()

    @property
    def label(self) -> str:
        """Which judge, in words (logs, metrics, MLflow)."""
        if self.kind == "alpaca_eval":
            a = self.alpaca_eval
            return f"alpaca_eval {a.annotator}{f' with {a.model}' if a.model else ''} at {self.openai.base_url}"
        return self.model if self.kind != "openai" else f"{self.openai.model} at {self.openai.base_url}"

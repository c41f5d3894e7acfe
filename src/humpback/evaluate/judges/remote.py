"""An OpenAI-compatible endpoint as the judge: one letter per pair, through :class:`humpback.models.endpoint.Endpoint`
(its retries, Retry-After and dead-endpoint stop)."""

from __future__ import annotations

from humpback.evaluate.judges.base import Judge, Pair, Verdict, parse_verdict, verdict_from_logprobs
from humpback.evaluate.judges.config import JudgeConfig
from humpback.models.endpoint import Endpoint, Reply
from humpback.prompts import judge_messages


class OpenAIJudge(Judge):
    """An OpenAI-compatible chat endpoint, greedy, one letter; a reply with no verdict is asked
    again like a failed request, and a pair still without one after the retries has ``p_b`` None."""

    def __init__(self, cfg: JudgeConfig, template: str, client=None, retry_wait_s: float = 0.5, seed: int = 0):
        self.cfg, self.template = cfg.openai, template
        self.endpoint = Endpoint(cfg.openai, "evaluate.judge.openai", client, retry_wait_s, seed)
        self.name = f"openai:{cfg.openai.model}"

    def _read(self, choice, text: str) -> float | None:
        if self.cfg.logprobs and getattr(choice, "logprobs", None) and choice.logprobs.content:
            p_b = verdict_from_logprobs(choice.logprobs.content[0].top_logprobs)
            if p_b is not None:
                return p_b
        letter = parse_verdict(text)
        return None if letter is None else 1.0 if letter == "B" else 0.0

    def _ask(self, pair: Pair) -> Reply[float]:
        extra = {"logprobs": True, "top_logprobs": 5} if self.cfg.logprobs else {}
        return self.endpoint.ask(judge_messages(*pair, self.template), self._read, what="verdict",
                                 max_tokens=self.cfg.max_tokens, temperature=0.0, **extra)

    def judge(self, pairs, on_verdict):
        self.endpoint.map(pairs, self._ask, lambda i, r: on_verdict(i, Verdict(r.value, r.text, r.error)))

"""Pairwise judges: given a request and answers A and B, the probability that B is the better one.

- :class:`LocalJudge` reads the verdict from a local model's next-token probabilities (one forward
  pass per pair, on the hf or the vllm engine).
- :class:`OpenAIJudge` asks any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server) for a
  one-letter verdict, optionally weighted by the returned top logprobs.

Judges only see one order at a time; :mod:`humpback.evaluate` asks for both orders of every pair so
that position bias cancels. A judge reports each verdict through a callback as soon as it has it,
so the caller can persist it: a crash or a failing endpoint never loses finished judgements.
"""

from __future__ import annotations

import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from humpback.config import GenerationConfig, JudgeConfig, VLLMConfig
from humpback.models.generation import EngineSpec
from humpback.prompts import judge_messages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    p_b: float | None  # probability that answer B is better; None when the judgement failed
    raw: str  # the judge's reply (or the two probabilities), for audit
    error: str | None = None  # why p_b is None


# (instruction, answer A, answer B)
Pair = tuple[str, str, str]
OnVerdict = Callable[[int, Verdict], None]


class Judge(ABC):
    name: str

    @abstractmethod
    def judge(self, pairs: list[Pair], on_verdict: OnVerdict) -> None:
        """Call ``on_verdict(i, verdict)`` once for every pair, in any order."""


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


_VERDICT_RE = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")


def parse_verdict(text: str) -> str | None:
    """The first standalone A or B of a reply ("B", "**A**", "Answer B.", "A is better"), else None."""
    m = _VERDICT_RE.search(text or "")
    return m.group(1) if m else None


def verdict_from_logprobs(top_logprobs: list) -> float | None:
    """p(B) / (p(A) + p(B)) from the first token's top logprobs, or None if neither letter is there."""
    import math

    mass = {"A": 0.0, "B": 0.0}
    for entry in top_logprobs or []:
        token = (getattr(entry, "token", None) or "").strip().strip("*").upper()
        if token in mass:
            mass[token] += math.exp(entry.logprob)
    total = mass["A"] + mass["B"]
    return mass["B"] / total if total > 0 else None


class OpenAIJudge(Judge):
    """An OpenAI-compatible chat endpoint, greedy, one letter. Connection errors, timeouts, 429 and
    5xx are retried by the client with backoff (``max_retries``); malformed bodies and unparseable
    replies, which it does not retry, are retried here as often. Then the pair's verdict is a
    failure (counted, never raised)."""

    def __init__(self, cfg: JudgeConfig, template: str, client=None, retry_wait_s: float = 0.5):
        from openai import OpenAI

        o = cfg.openai
        key = os.environ.get(o.api_key_env)
        if not key and "api.openai.com" in o.base_url:
            raise ValueError(f"evaluate.judge.openai: set the environment variable {o.api_key_env} to your "
                             "API key (keys are never read from params)")
        # local servers (vLLM, llama.cpp) take any key
        self.client = client or OpenAI(base_url=o.base_url, api_key=key or "not-needed", timeout=o.timeout_s,
                                       max_retries=o.max_retries)
        self.cfg, self.template, self.retry_wait_s = o, template, retry_wait_s
        self.name = f"openai:{o.model}"

    def _ask(self, pair: Pair) -> Verdict:
        import openai

        messages = judge_messages(*pair, self.template)
        extra = {"logprobs": True, "top_logprobs": 5} if self.cfg.logprobs else {}
        problem = "no_reply"
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                time.sleep(self.retry_wait_s * 2 ** (attempt - 1))
            try:
                reply = self.client.chat.completions.create(
                    model=self.cfg.model, messages=messages, max_tokens=self.cfg.max_tokens, temperature=0.0, **extra)
                choice = reply.choices[0]
                text = choice.message.content or ""
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                # the client has already retried these (5xx, 429, timeouts) with backoff: give up
                return Verdict(None, "", f"{type(exc).__name__}: {str(exc)[:200]}")
            except (openai.APIError, IndexError, AttributeError, TypeError, ValueError) as exc:
                # a malformed body: the client does not retry those, so we do
                problem = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.debug("judge request failed (attempt %d): %s", attempt + 1, problem)
                continue
            if self.cfg.logprobs and getattr(choice, "logprobs", None) and choice.logprobs.content:
                p_b = verdict_from_logprobs(choice.logprobs.content[0].top_logprobs)
                if p_b is not None:
                    return Verdict(p_b, text)
            letter = parse_verdict(text)
            if letter is not None:
                return Verdict(1.0 if letter == "B" else 0.0, text)
            problem = f"unparseable: {text[:200]!r}"
        return Verdict(None, "", problem)

    def judge(self, pairs, on_verdict):
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            futures = {pool.submit(self._ask, p): i for i, p in enumerate(pairs)}
            for fut in as_completed(futures):
                on_verdict(futures[fut], fut.result())


def judge_identity(cfg: JudgeConfig, template: str, vllm: VLLMConfig | None = None) -> dict:
    """Everything that makes a judge's verdicts what they are: the key of cached verdicts."""
    if cfg.kind == "alpaca_eval":  # its own cache is keyed on its annotator's name; this keys ours (scaling)
        return {"kind": "alpaca_eval", "annotator": cfg.alpaca_eval.annotator, "model": cfg.alpaca_eval.model,
                "base_url": cfg.openai.base_url}
    if cfg.kind != "openai":
        from humpback.io import dir_digest

        return {"kind": cfg.kind, "model": dir_digest(cfg.model), "template": template, "prefix": LocalJudge.PREFIX,
                "max_input_tokens": cfg.max_input_tokens, **local_spec(cfg, vllm).identity()}
    o = cfg.openai
    return {"kind": "openai", "base_url": o.base_url, "model": o.model, "template": template,
            "logprobs": o.logprobs, "max_tokens": o.max_tokens}


def make_judge(cfg: JudgeConfig, template: str, vllm: VLLMConfig | None = None) -> Judge:
    if cfg.kind == "alpaca_eval":
        raise ValueError("the alpaca_eval judge runs through humpback.evaluate.judge_pairs, not as a Judge")
    if cfg.kind == "openai":
        return OpenAIJudge(cfg, template)
    return LocalJudge(local_spec(cfg, vllm), template)

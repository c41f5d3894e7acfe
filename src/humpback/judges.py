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
import random
import re
import threading
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


def retry_after_s(exc) -> float | None:
    """The wait an HTTP error asks for (``Retry-After`` in seconds or as an HTTP date,
    ``retry-after-ms``), or None where it names none."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _sleep(seconds: float) -> None:  # one name for the tests to record the waits by
    time.sleep(seconds)


class OpenAIJudge(Judge):
    """An OpenAI-compatible chat endpoint, greedy, one letter.

    Every request that fails for a reason the endpoint may not repeat (connection error, timeout,
    429, 5xx, a malformed body, a reply that is no verdict) is asked again up to ``max_retries``
    times: after the wait a ``Retry-After`` header names (up to ``max_wait_s``), else after an
    exponential back-off with full jitter. Then the pair has no verdict (``Verdict.p_b`` None, with
    the reason). After ``dead_after`` failed requests in a row with no success between, the endpoint
    counts as down: the pairs not yet answered are not asked (their verdicts fail at once), so a
    dead endpoint ends the stage in seconds instead of spending every retry on every pair."""

    def __init__(self, cfg: JudgeConfig, template: str, client=None, retry_wait_s: float = 0.5, seed: int = 0):
        from openai import OpenAI

        o = cfg.openai
        key = os.environ.get(o.api_key_env)
        if not key and "api.openai.com" in o.base_url:
            raise ValueError(f"evaluate.judge.openai: set the environment variable {o.api_key_env} to your "
                             "API key (keys are never read from params)")
        # local servers (vLLM, llama.cpp) take any key; the retries are ours (max_retries=0 here)
        self.client = client or OpenAI(base_url=o.base_url, api_key=key or "not-needed", timeout=o.timeout_s,
                                       max_retries=0)
        self.cfg, self.template, self.retry_wait_s = o, template, retry_wait_s
        self.name = f"openai:{o.model}"
        self._rng = random.Random(seed)  # jitter only: verdicts never depend on it
        self._lock = threading.Lock()
        self._failures_in_a_row = 0
        self.down: str | None = None  # why the endpoint counts as down, once it does

    def _outcome(self, ok: bool, problem: str = "") -> None:
        with self._lock:
            if ok:
                self._failures_in_a_row = 0
                return
            self._failures_in_a_row += 1
            if self.down is None and self._failures_in_a_row >= self.cfg.dead_after:
                self.down = f"{self._failures_in_a_row} requests in a row failed, the last with {problem}"
                log.warning("judge endpoint %s is down (%s): the remaining pairs are not asked",
                            self.cfg.base_url, self.down)

    def _wait(self, attempt: int, exc) -> None:
        asked = retry_after_s(exc) if exc is not None else None
        if asked is not None:
            wait = min(asked, self.cfg.max_wait_s)
        else:
            with self._lock:
                wait = self._rng.uniform(0, min(self.cfg.max_wait_s, self.retry_wait_s * 2 ** attempt))
        _sleep(wait)

    def _ask(self, pair: Pair) -> Verdict:
        import openai

        messages = judge_messages(*pair, self.template)
        extra = {"logprobs": True, "top_logprobs": 5} if self.cfg.logprobs else {}
        problem, last_exc = "no reply", None
        for attempt in range(self.cfg.max_retries + 1):
            if self.down:
                return Verdict(None, "", f"not asked: the endpoint is down ({self.down})")
            if attempt:
                self._wait(attempt - 1, last_exc)
            last_exc = None
            try:
                reply = self.client.chat.completions.create(
                    model=self.cfg.model, messages=messages, max_tokens=self.cfg.max_tokens, temperature=0.0, **extra)
                choice = reply.choices[0]
                text = choice.message.content or ""
            except openai.APIStatusError as exc:  # 429, 5xx, or a refusal (401, 404: retried too, then counted)
                problem, last_exc = f"HTTP {exc.status_code}: {str(exc)[:200]}", exc
            except openai.APIConnectionError as exc:  # refused, reset, or past timeout_s
                problem, last_exc = f"{type(exc).__name__}: {str(exc)[:200]}", exc
            except (openai.APIError, IndexError, AttributeError, TypeError, ValueError) as exc:  # a malformed body
                problem = f"malformed reply ({type(exc).__name__}: {str(exc)[:200]})"
            else:
                if self.cfg.logprobs and getattr(choice, "logprobs", None) and choice.logprobs.content:
                    p_b = verdict_from_logprobs(choice.logprobs.content[0].top_logprobs)
                    if p_b is not None:
                        self._outcome(True)
                        return Verdict(p_b, text)
                letter = parse_verdict(text)
                if letter is not None:
                    self._outcome(True)
                    return Verdict(1.0 if letter == "B" else 0.0, text)
                problem = f"no verdict in the reply {text[:200]!r}"
            log.debug("judge request failed (attempt %d): %s", attempt + 1, problem)
            self._outcome(False, problem)
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

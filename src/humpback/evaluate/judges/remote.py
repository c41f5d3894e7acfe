"""An OpenAI-compatible endpoint as the judge, with its own retries, Retry-After and a dead-endpoint stop."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from humpback.evaluate.judges.base import Judge, Pair, Verdict, parse_verdict, verdict_from_logprobs
from humpback.evaluate.judges.config import JudgeConfig
from humpback.prompts import judge_messages

log = logging.getLogger(__name__)


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

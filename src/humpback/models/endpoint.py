"""An OpenAI-compatible chat endpoint: our own retries, Retry-After, and a stop when it is down.

Used by every step that may ask a served model instead of loading one: the judge (``evaluate.judge``
kind openai) and the rewrite step's ``openai`` engine (:class:`OpenAIEngine`). The OpenAI client's own
retries are off; ours follow the endpoint's ``Retry-After`` and stop asking a dead endpoint.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from humpback.models.base import GenerationEngine, Sampling, request_seed
from humpback.models.config import EndpointConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


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


@dataclass(frozen=True)
class Reply(Generic[T]):
    value: T | None  # what ``read`` made of the reply; None when every attempt failed
    text: str  # the reply's text, for audit
    error: str | None = None  # why value is None


class Endpoint:
    """Requests to one endpoint, each asked again on a failure the endpoint may not repeat.

    A connection error, timeout, 429, 5xx, malformed body, or a reply ``read`` cannot use is asked
    again up to ``max_retries`` times: after the wait a ``Retry-After`` header names (at most
    ``max_wait_s``), else after an exponential back-off with full jitter. After ``dead_after``
    failed requests in a row with no success between, the endpoint counts as down: what is not yet
    asked fails at once, so a dead endpoint ends a stage in seconds, not after every retry of every item.
    """

    def __init__(self, cfg: EndpointConfig, where: str, client=None, retry_wait_s: float = 0.5, seed: int = 0):
        from openai import OpenAI

        key = os.environ.get(cfg.api_key_env)
        if not key and "api.openai.com" in cfg.base_url:
            raise ValueError(f"{where}: set the environment variable {cfg.api_key_env} to your "
                             "API key (keys are never read from params)")
        # local servers (vLLM, llama.cpp) take any key; the retries are ours (max_retries=0 here)
        self.client = client or OpenAI(base_url=cfg.base_url, api_key=key or "not-needed", timeout=cfg.timeout_s,
                                       max_retries=0)
        self.cfg, self.retry_wait_s = cfg, retry_wait_s
        self._rng = random.Random(seed)  # jitter only: results never depend on it
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
                log.warning("endpoint %s is down (%s): the remaining requests are not sent",
                            self.cfg.base_url, self.down)

    def _wait(self, attempt: int, exc) -> None:
        asked = retry_after_s(exc) if exc is not None else None
        if asked is not None:
            wait = min(asked, self.cfg.max_wait_s)
        else:
            with self._lock:
                wait = self._rng.uniform(0, min(self.cfg.max_wait_s, self.retry_wait_s * 2 ** attempt))
        _sleep(wait)

    def ask(self, messages: list[dict], read: Callable[[Any, str], T | None], what: str = "reply",
            **request) -> Reply[T]:
        """One chat request; ``read(choice, text)`` turns the reply into a value (None: unusable, asked again)."""
        import openai

        problem, last_exc = "no reply", None
        for attempt in range(self.cfg.max_retries + 1):
            if self.down:
                return Reply(None, "", f"not asked: the endpoint is down ({self.down})")
            if attempt:
                self._wait(attempt - 1, last_exc)
            last_exc = None
            try:
                reply = self.client.chat.completions.create(model=self.cfg.model, messages=messages, **request)
                choice = reply.choices[0]
                text = choice.message.content or ""
            except openai.APIStatusError as exc:  # 429, 5xx, or a refusal (401, 404: retried too, then counted)
                problem, last_exc = f"HTTP {exc.status_code}: {str(exc)[:200]}", exc
            except openai.APIConnectionError as exc:  # refused, reset, or past timeout_s
                problem, last_exc = f"{type(exc).__name__}: {str(exc)[:200]}", exc
            except (openai.APIError, IndexError, AttributeError, TypeError, ValueError) as exc:  # a malformed body
                problem = f"malformed reply ({type(exc).__name__}: {str(exc)[:200]})"
            else:
                value = read(choice, text)
                if value is not None:
                    self._outcome(True)
                    return Reply(value, text)
                problem = f"no {what} in the reply {text[:200]!r}"
            log.debug("request to %s failed (attempt %d): %s", self.cfg.base_url, attempt + 1, problem)
            self._outcome(False, problem)
        return Reply(None, "", problem)

    def map(self, items: Sequence, ask_one: Callable[[Any], Reply], on_reply: Callable[[int, Reply], None]) -> None:
        """``ask_one`` for every item, ``concurrency`` at a time; ``on_reply(index, reply)`` as each returns."""
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            futures = {pool.submit(ask_one, item): i for i, item in enumerate(items)}
            for fut in as_completed(futures):
                on_reply(futures[fut], fut.result())


class OpenAIEngine(GenerationEngine):
    """Generation on an OpenAI-compatible endpoint: each conversation one request, seeded by its
    index (``request_seed``), so a served model with seeded sampling repeats itself.

    Unlike a local engine it can fail on single requests: those come back as None (with the reasons
    in :attr:`errors`), and the caller keeps what it got and asks for the rest on the next run."""

    name = "openai"

    def __init__(self, cfg: EndpointConfig, where: str, client=None, retry_wait_s: float = 0.5):
        self.endpoint = Endpoint(cfg, where, client, retry_wait_s)
        self.errors: list[str] = []

    def generate(self, conversations, sampling: Sampling, on_batch=None) -> list[str | None]:
        outputs: list[str | None] = [None] * len(conversations)
        self.errors = []

        def ask(i: int) -> Reply[str]:
            request = {"max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature,
                       "seed": request_seed(sampling.seed, i)}
            if sampling.temperature > 0:
                request["top_p"] = sampling.top_p
            return self.endpoint.ask(conversations[i], lambda choice, text: text, what="text", **request)

        def done(i: int, reply: Reply[str]) -> None:
            outputs[i] = reply.value
            if reply.value is None:
                self.errors.append(reply.error or "failed")
            if on_batch:
                on_batch(1)

        self.endpoint.map(range(len(conversations)), ask, done)
        return outputs

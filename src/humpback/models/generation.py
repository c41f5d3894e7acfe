"""Text generation behind one small interface, so a vLLM backend can replace transformers on GPUs.

An engine takes chat conversations and sampling settings and returns one completion per
conversation, in input order. Within a call, results depend only on the inputs, the model and
``Sampling.seed``, so a stage that seeds each shard separately reproduces each shard exactly.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from humpback.models.device import device, use_bf16

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 128
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class GenerationEngine(ABC):
    name: str = "abstract"

    @abstractmethod
    def generate(self, conversations: list[list[dict]], sampling: Sampling,
                 on_batch: Callable[[int], None] | None = None) -> list[str]:
        """One completion per conversation, in the same order; ``on_batch(n)`` after each batch."""


class HFEngine(GenerationEngine):
    """transformers ``generate``: batched, left-padded, longest first, bf16 where it is native."""

    name = "hf"

    def __init__(self, model_dir: str | Path, batch_size: int = 8, precision: str = "auto",
                 max_input_tokens: int = 2048):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.dtype = torch.bfloat16 if use_bf16(precision) else torch.float32
        self.device = device()
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype).to(self.device).eval()
        self.batch_size = batch_size
        self.max_input_tokens = max_input_tokens

    def _encode(self, conversations: list[list[dict]]) -> list[list[int]]:
        texts = [self.tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
        ids = self.tok(texts, add_special_tokens=False)["input_ids"]
        # over-long prompts keep their end: that is where the generation prompt is
        return [x[-self.max_input_tokens:] for x in ids]

    @torch.inference_mode()
    def generate(self, conversations, sampling, on_batch=None):
        if not conversations:
            return []
        encoded = self._encode(conversations)
        # longest first: batches hold similar lengths (little padding) and memory peaks early
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        outputs: list[str] = [""] * len(encoded)
        torch.manual_seed(sampling.seed)
        do_sample = sampling.temperature > 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.tok.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(self.device)
            out = self.model.generate(
                **batch,
                do_sample=do_sample,
                temperature=sampling.temperature if do_sample else None,
                top_p=sampling.top_p if do_sample else None,
                top_k=0 if do_sample else None,  # nucleus sampling only, as in the paper
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=self.tok.pad_token_id,
            )
            new_tokens = out[:, batch["input_ids"].shape[1]:]
            for i, text in zip(idx, self.tok.batch_decode(new_tokens, skip_special_tokens=True)):
                outputs[i] = text
            if on_batch:
                on_batch(len(idx))
        return outputs


def make_engine(kind: str, model_dir: str | Path, **kwargs) -> GenerationEngine:
    if kind == "hf":
        return HFEngine(model_dir, **kwargs)
    raise ValueError(f"unknown generation engine {kind!r} (available: hf)")

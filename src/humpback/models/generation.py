"""Every model call behind one factory: :class:`EngineSpec` says which model runs on which engine.

A stage builds one ``EngineSpec`` from its generation section (and the top-level ``vllm`` section)
and gets from it the sampling settings, the identity that goes into its shard keys, a text
generator (:class:`GenerationEngine`) and a reader of choice probabilities
(:class:`humpback.models.choices.ChoiceReader`). The engine, ``hf`` (transformers) or ``vllm``, is
a setting: no stage knows which one runs.

An engine takes chat conversations and sampling settings and returns one completion per
conversation, in input order. Within a call, results depend only on the inputs, the model, the
engine and ``Sampling.seed``, so a stage that seeds each shard separately reproduces each shard.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from humpback.config import GenerationConfig, VLLMConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 128
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def request_seed(seed: int, index: int) -> int:
    """A seed per request (engines that seed requests one by one): stable and independent of batching."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "big") >> 1


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def encode_chats(tok, conversations: Sequence[list[dict]], max_tokens: int, suffix: str = "") -> list[list[int]]:
    """Token ids of each conversation with the generation prompt (and ``suffix``, a forced answer start).

    Over-long prompts keep their end: the generation prompt and the question are there. Every engine
    encodes through here, so they all see the same tokens.
    """
    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + suffix for c in conversations]
    return [ids[-max_tokens:] for ids in tok(texts, add_special_tokens=False)["input_ids"]]


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
        import torch
        from transformers import AutoModelForCausalLM

        from humpback.models.device import device, use_bf16

        self.tok = load_tokenizer(model_dir)
        self.dtype = torch.bfloat16 if use_bf16(precision) else torch.float32
        self.device = device()
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype).to(self.device).eval()
        self.batch_size = batch_size
        self.max_input_tokens = max_input_tokens

    def generate(self, conversations, sampling, on_batch=None):
        import torch

        if not conversations:
            return []
        with torch.inference_mode():
            return self._generate(conversations, sampling, on_batch)

    def _generate(self, conversations, sampling, on_batch):
        import torch

        encoded = encode_chats(self.tok, conversations, self.max_input_tokens)
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


@dataclass(frozen=True)
class EngineSpec:
    """Which model, on which engine, with which settings: the one way a stage gets a model to run."""

    model_dir: str | Path
    generation: GenerationConfig = GenerationConfig()
    vllm: VLLMConfig = field(default_factory=VLLMConfig)

    @property
    def engine(self) -> str:
        return self.generation.engine

    def resolved(self) -> "EngineSpec":
        """The same spec with an absolute model path: valid in a Ray worker, whose working folder differs."""
        spec = copy.copy(self)  # a copy, not dataclasses.replace: subclasses keep what they hold
        object.__setattr__(spec, "model_dir", Path(self.model_dir).resolve())
        return spec

    def sampling(self, seed: int | None = None) -> Sampling:
        """The section's sampling settings; ``seed`` (a shard's) replaces the section's seed."""
        g = self.generation
        return Sampling(g.temperature, g.top_p, g.max_new_tokens, g.seed if seed is None else seed)

    def identity(self) -> dict:
        """What of the engine can change outputs, merged into every shard key and verdict key.

        Empty for hf: keys made before the engine was a setting were all hf, and stay valid."""
        if self.engine == "hf":
            return {}
        return {"engine": self.engine, **(self.vllm.identity() if self.engine == "vllm" else {})}

    def generator(self) -> GenerationEngine:
        g = self.generation
        if g.engine == "vllm":
            from humpback.models.vllm_engine import VLLMEngine

            return VLLMEngine(self.model_dir, g, self.vllm)
        if g.engine == "hf":
            return HFEngine(self.model_dir, g.batch_size, g.precision, g.max_input_tokens)
        raise ValueError(f"unknown generation engine {g.engine!r} (available: hf, vllm)")

    def choice_reader(self, choices: Sequence[str], prefix: str, batch_size: int | None = None):
        """A :class:`~humpback.models.choices.ChoiceReader` for the forced answer start ``prefix``."""
        g = self.generation
        if g.engine == "vllm":
            from humpback.models.vllm_engine import VLLMChoiceReader

            return VLLMChoiceReader(self.model_dir, choices, prefix, g, self.vllm)
        from humpback.models.choices import HFChoiceReader

        return HFChoiceReader(self.model_dir, choices, prefix, batch_size or g.batch_size, g.precision,
                              g.max_input_tokens)

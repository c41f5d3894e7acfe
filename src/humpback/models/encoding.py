"""How every engine encodes a conversation, so they all see the same tokens."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


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


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every sequence shares, leaving each at least one token of its own."""
    if not sequences:
        return 0
    first, n = sequences[0], min(len(s) for s in sequences) - 1
    for s in sequences[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


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

"""Seed (instruction, response) pairs: a local file, or OASST with the paper's selection rule.

The paper's rule for OASST (§3.1): the first turn of each conversation tree only (the root prompt
and a direct reply), English, and only the reply ranked 0 by the annotators; 3,200 pairs. The paper
does not say how the 3,200 were picked from the eligible pairs, so we take them in a seeded hash
order of the prompt's message id: deterministic, independent of file order, and a uniform sample.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from humpback.core.files import read_records
from humpback.core.keys import seeded_order
from humpback.core.shards import SEED_SCHEMA
from humpback.data.config import SeedConfig
from humpback.data.dedup import content_id

OASST_PAPER_PAIRS = 3200


class SeedDataError(ValueError):
    """The seed source is unusable; the message names the file and row."""


# ------------------------------------------------------------------------------------ local files
def load_local_pairs(path: str | Path, instruction_column: str, response_column: str) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise SeedDataError(f"seed.path: '{path}' is not a file")
    pairs = []
    for where, row in read_records(path, SeedDataError, "seed"):
        if not isinstance(row, dict):
            raise SeedDataError(f"{where}: expected an object with '{instruction_column}' and '{response_column}'")
        missing = [c for c in (instruction_column, response_column) if not isinstance(row.get(c), str)]
        if missing:
            raise SeedDataError(
                f"{where}: missing or non-text column(s) {missing}; columns present: {sorted(row)}. "
                f"Set seed.instruction_column / seed.response_column to match the file."
            )
        instruction, response = row[instruction_column].strip(), row[response_column].strip()
        if not instruction or not response:
            raise SeedDataError(f"{where}: empty instruction or response")
        pairs.append({"instruction": instruction, "response": response, "source": str(path)})
    if not pairs:
        raise SeedDataError(f"{path}: no seed pairs found")
    return pairs


# ------------------------------------------------------------------------------------------ OASST
def _flatten_trees(rows: Iterable[dict]) -> Iterator[dict]:
    """Messages of OASST's tree export (``{"prompt": {..., "replies": [...]}}``) as flat rows."""

    def walk(msg: dict, parent: str | None):
        flat = {k: v for k, v in msg.items() if k != "replies"}
        flat["parent_id"] = parent
        yield flat
        for reply in msg.get("replies") or []:
            yield from walk(reply, msg.get("message_id"))

    for row in rows:
        if "prompt" in row and isinstance(row["prompt"], dict):
            yield from walk(row["prompt"], None)
        else:
            yield row


def oasst_first_turn_pairs(messages: Iterable[dict], lang: str = "en") -> list[dict]:
    """Eligible pairs: root prompt in ``lang`` with its rank-0 assistant reply (also in ``lang``).

    Deleted messages and replies that failed review are not eligible.
    """
    roots: dict[str, dict] = {}
    best: dict[str, dict] = {}
    for m in _flatten_trees(messages):
        if m.get("deleted") or m.get("review_result") is False:
            continue
        if m.get("parent_id") is None and m.get("role") == "prompter" and m.get("lang") == lang:
            roots[m["message_id"]] = m
        elif m.get("role") == "assistant" and m.get("rank") == 0 and m.get("lang") == lang:
            best[m["parent_id"]] = m
    pairs = []
    for mid, root in roots.items():
        reply = best.get(mid)
        if reply and root.get("text", "").strip() and reply.get("text", "").strip():
            pairs.append(
                {"instruction": root["text"].strip(), "response": reply["text"].strip(),
                 "source": "oasst", "message_id": mid}
            )
    return pairs


def select_pairs(pairs: list[dict], max_pairs: int | None, seed: int) -> list[dict]:
    """The first ``max_pairs`` pairs in a seeded hash order of their key (message id or text)."""

    ordered = seeded_order(pairs, seed, lambda p: p.get("message_id") or p["instruction"] + "\x00" + p["response"])
    return ordered if max_pairs is None else ordered[:max_pairs]


def load_oasst_messages(cfg: SeedConfig) -> Iterator[dict]:
    """Messages from the hub (``seed.hub_dataset``) or a local OASST export (trees or flat)."""
    if cfg.hub_dataset:
        from datasets import load_dataset

        for split in cfg.oasst_splits:
            yield from load_dataset(cfg.hub_dataset, split=split)
        return
    local = Path(cfg.path).expanduser()
    if not local.is_file():
        raise SeedDataError(f"seed.path: '{local}' is not a file (set seed.hub_dataset to load OASST from the hub)")
    for _, row in read_records(local, SeedDataError, "seed"):
        yield row


# ------------------------------------------------------------------------------------------- both
def load_seed(cfg: SeedConfig) -> list[dict]:
    if cfg.source == "local":
        pairs = load_local_pairs(cfg.path, cfg.instruction_column, cfg.response_column)
        if cfg.max_pairs:
            pairs = select_pairs(pairs, cfg.max_pairs, cfg.split_seed)
    else:
        pairs = oasst_first_turn_pairs(load_oasst_messages(cfg), cfg.lang)
        if not pairs:
            raise SeedDataError(f"{cfg.hub_dataset or cfg.path}: no eligible first-turn rank-0 '{cfg.lang}' pairs")
        pairs = select_pairs(pairs, cfg.max_pairs or OASST_PAPER_PAIRS, cfg.split_seed)
    seen, unique = set(), []
    for p in pairs:  # an exact repeat would leak between train and held-out
        pid = content_id(p["instruction"] + "\x00" + p["response"])
        if pid not in seen:
            seen.add(pid)
            unique.append({"id": pid, "instruction": p["instruction"], "response": p["response"], "source": p["source"]})
    return unique


def split_heldout(pairs: list[dict], heldout: int, seed: int) -> tuple[list[dict], list[dict]]:
    if heldout >= len(pairs):
        raise SeedDataError(f"seed.heldout: {heldout} held-out pairs leaves nothing to train on ({len(pairs)} pairs)")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[:heldout])
    train = [p for i, p in enumerate(pairs) if i not in held]
    test = [p for i, p in enumerate(pairs) if i in held]
    return train, test


def to_table(pairs: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(pairs, schema=SEED_SCHEMA)

"""Recognise and load the datasets humpback writes, for `humpback inspect` and `humpback export`.

Kinds, told apart by their columns: raw documents, corpus segments, candidates (segment + generated instruction),
scores (curator ratings), curated pairs (A_k), seed pairs, AlpacaEval model outputs and AlpacaEval
annotations. Score tables are joined to their candidates so a rating is shown beside its pair.
"""

from __future__ import annotations

import json
from pathlib import Path

KINDS = {
    # kind: (columns that identify it, columns to show)
    "scores": ({"id", "score", "curator", "raw"}, ["id", "score", "expected_score", "instruction", "text", "raw"]),
    "curated": ({"id", "instruction", "response", "score"}, ["id", "score", "expected_score", "instruction", "response"]),
    "candidates": ({"id", "instruction", "text", "backward_model"}, ["id", "instruction", "text", "url"]),
    "seed": ({"id", "instruction", "response", "source"}, ["id", "instruction", "response", "source"]),
    "corpus": ({"id", "text", "n_chars"}, ["id", "header", "n_chars", "text"]),
    "raw": ({"id", "text", "format", "license"}, ["id", "name", "license", "url", "text"]),
    "annotations": ({"instruction", "output_1", "output_2", "preference"},
                    ["index", "preference", "instruction", "output_1", "output_2"]),
    "model_outputs": ({"instruction", "output", "generator"}, ["generator", "instruction", "output"]),
}


class NotAHumpbackDataset(ValueError):
    """The path holds nothing humpback wrote; the message says what was expected."""


def _kind(columns: set[str], path: Path) -> str:
    for kind, (needed, _) in KINDS.items():
        if needed <= columns:
            return kind
    raise NotAHumpbackDataset(
        f"{path}: not a humpback dataset (columns {sorted(columns)}); expected Parquet shards of raw "
        "documents, corpus segments, candidates, scores, curated or seed pairs (data/...), or an AlpacaEval JSON "
        "(data/eval/answers/*.json, data/eval/judged/*/annotations.json)")


def load(path: str | Path, candidates: str | Path | None = "data/candidates") -> tuple[str, list[dict]]:
    """(kind, rows) of a Parquet file or folder of shards, or an AlpacaEval JSON file."""
    path = Path(path)
    if not path.exists():
        raise NotAHumpbackDataset(f"{path}: no such file or folder")
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise NotAHumpbackDataset(f"{path}: not readable JSON ({exc})") from None
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            raise NotAHumpbackDataset(f"{path}: expected a non-empty JSON list of objects")
        return _kind(set(rows[0]), path), rows
    import pyarrow.parquet as pq

    from humpback.core.shards import shard_files

    # a folder's shards only: not the curator check (_curator_check-*.parquet) nor temp files beside them
    files = shard_files(path) if path.is_dir() else [path]
    if not files or any(f.suffix != ".parquet" for f in files):
        raise NotAHumpbackDataset(f"{path}: no Parquet shards here")
    try:
        tables = [pq.read_table(f) for f in files]
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise NotAHumpbackDataset(f"{path}: not readable Parquet ({exc})") from None
    kind = _kind(set(tables[0].column_names), path)
    rows = [r for t in tables for r in t.to_pylist()]
    if kind == "scores" and candidates and Path(candidates).is_dir():
        pairs = {r["id"]: r for r in load(candidates, None)[1]}
        rows = [{**pairs.get(r["id"], {}), **r} for r in rows]
    return kind, rows


def score_of(row: dict, expected: bool = False) -> float | None:
    if "preference" in row:
        return row["preference"]
    return row.get("expected_score") if expected else row.get("score")

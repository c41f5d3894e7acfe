"""select@i: A_k^(i), the pairs whose score reaches the threshold k, with the score histogram and the kept-size curve."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from humpback.core.keys import seeded_order
from humpback.curate.config import SCORES, CurateConfig

if TYPE_CHECKING:  # the model stack (torch) loads only where a curator runs, not for select@i
    pass

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------- select@i
CURATED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("score", pa.int8()),
        pa.field("expected_score", pa.float32()),
        pa.field("url", pa.string()),
    ]
)


def select(candidates_dir: str | Path, scores_dir: str | Path, cfg: CurateConfig) -> tuple[pa.Table, dict]:
    """A_k: candidates whose score (or expected score) is >= the threshold; optional seeded cap."""
    from humpback.augment.form import well_formed_share
    from humpback.core.shards import read_table
    from humpback.core.stats import length_stats

    cands = {r["id"]: r for r in read_table(candidates_dir, ["id", "instruction", "text", "url"]).to_pylist()}
    scores = read_table(scores_dir, ["id", "score", "expected_score", "parse_error"]).to_pylist()
    missing = [s["id"] for s in scores if s["id"] not in cands]
    if missing:
        raise ValueError(f"{scores_dir}: {len(missing)} scores have no candidate in {candidates_dir} "
                         f"(first: {missing[0]}); the scores are stale, rerun score")
    key = "expected_score" if cfg.use_expected_score else "score"
    kept = [s for s in scores if s[key] is not None and s[key] >= cfg.threshold]
    eligible = len(kept)
    if cfg.max_selected is not None and len(kept) > cfg.max_selected:
        kept = seeded_order(kept, cfg.sample_seed)
        kept = sorted(kept[: cfg.max_selected], key=lambda s: s["id"])
    rows = [{"id": s["id"], "instruction": cands[s["id"]]["instruction"], "response": cands[s["id"]]["text"],
             "score": s["score"], "expected_score": s["expected_score"], "url": cands[s["id"]]["url"]} for s in kept]
    counts = Counter(s["score"] for s in scores)
    metrics = {
        "threshold": cfg.threshold,
        "compared": key,
        "pairs": len(scores),
        "scores": {str(k): counts.get(k, 0) for k in SCORES},
        "unparseable": counts.get(None, 0),
        "eligible": eligible,
        "kept": len(rows),
        "kept_share": round(len(rows) / len(scores), 4) if scores else 0.0,
        "kept_instruction_chars": length_stats([len(r["instruction"]) for r in rows]),
        "well_formed": well_formed_share([r["instruction"] for r in rows]),  # kept pairs that read as requests
        "kept_response_chars": length_stats([len(r["response"]) for r in rows]),
    }
    expected = [s["expected_score"] for s in scores if s["expected_score"] is not None]
    if expected:
        metrics["mean_expected_score"] = round(sum(expected) / len(expected), 4)
    return pa.Table.from_pylist(rows, schema=CURATED_SCHEMA), metrics


def histogram_rows(metrics: dict) -> list[dict]:
    """Rows of the score histogram plot (DVC plots read CSV)."""
    rows = [{"score": str(k), "count": metrics["scores"][str(k)]} for k in SCORES]
    rows.append({"score": "none", "count": metrics["unparseable"]})
    return rows


def threshold_curve(scores_dir: str | Path, step: float = 0.25) -> list[dict]:
    """How many pairs each threshold would keep: ``score >= k`` for k = 1..5 and, for the logits
    scorer, ``expected_score >= t`` on a grid. Threshold-independent: the data behind a sweep."""
    from humpback.core.shards import read_table

    scores = read_table(scores_dir, ["score", "expected_score"]).to_pylist()
    expected = [s["expected_score"] for s in scores if s["expected_score"] is not None]
    rows = []
    for i in range(int(4 / step) + 1):
        t = 1 + i * step
        rows.append({"threshold": t,
                     "kept_score": sum(s["score"] is not None and s["score"] >= t for s in scores) if t == int(t) else "",
                     "kept_expected_score": sum(e >= t for e in expected) if expected else ""})
    return rows

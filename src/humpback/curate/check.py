"""The curator check: negative pairs rated beside the candidates, and the ROC AUC of real against negative pairs."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from humpback.core.cluster import Unit
from humpback.core.keys import content_key, seeded_order
from humpback.core.shards import write_table_atomic

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- curator check
# Does the curator tell a matched pair from a broken one? Beside the candidates it rates negative
# pairs made from the same pool: a sampled candidate's instruction with the next sampled candidate's
# segment (another text), and with its own segment cut off mid-way. The ROC AUC of real against
# negative pairs is 0.5 for a curator that cannot tell them apart and 1.0 for one that always can.
NEGATIVE_KINDS = ("other_response", "truncated_response")


CHECK_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # the candidate whose instruction is used
        pa.field("kind", pa.string(), nullable=False),  # other_response | truncated_response
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("score", pa.int8()),
        pa.field("expected_score", pa.float32()),
        pa.field("parse_error", pa.string()),
    ]
)


def cut_mid_way(text: str) -> str:
    """The first half of ``text``, ended at the last whitespace before the middle (no split word)."""
    half = len(text) // 2
    cut = max(text.rfind(" ", 0, half + 1), text.rfind("\n", 0, half + 1))
    return text[: cut if cut > 0 else half].rstrip()


def negative_pairs(candidates: list[dict], n: int, seed: int) -> list[dict]:
    """Two negative pairs for each of ``n`` candidates drawn in a seeded order (see above); none
    with fewer than two candidates, where no other segment exists."""
    sample = seeded_order(candidates, seed)[:n]
    if len(sample) < 2:
        return []
    pairs = []
    for i, c in enumerate(sample):
        other = sample[(i + 1) % len(sample)]
        pairs.append({"id": c["id"], "kind": "other_response", "instruction": c["instruction"], "text": other["text"]})
        pairs.append({"id": c["id"], "kind": "truncated_response", "instruction": c["instruction"],
                      "text": cut_mid_way(c["text"])})
    return pairs


def roc_auc(real: list[float], negative: list[float]) -> float | None:
    """P(a real pair scores above a negative one), ties counting half: scikit-learn's ROC AUC."""
    if not real or not negative:
        return None
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score([1] * len(real) + [0] * len(negative), real + negative)), 4)


def check_metrics(real: list[float], negatives: list[dict], value: str) -> dict:
    """AUC (all negatives and per kind), mean scores and their gap; ``value`` names the compared
    score (the expected score of the logits scorer, else the parsed score). Unparseable ratings
    are counted and left out."""
    neg = [r for r in negatives if r[value] is not None]
    out = {"negatives": len(negatives), "unparseable_negatives": len(negatives) - len(neg), "compared": value,
           "auc": roc_auc(real, [r[value] for r in neg])}
    for kind in NEGATIVE_KINDS:
        out[f"auc_{kind}"] = roc_auc(real, [r[value] for r in neg if r["kind"] == kind])
    if real and neg:
        out["mean_real"] = round(sum(real) / len(real), 4)
        out["mean_negative"] = round(sum(r[value] for r in neg) / len(neg), 4)
        out["score_gap"] = round(out["mean_real"] - out["mean_negative"], 4)
    return out


def read_check(path: Path, expected: int) -> list[dict] | None:
    """The rated negative pairs of an earlier run, verified as shards are: None where there are
    none, or where the file does not read whole or holds another count (it is logged and removed)."""
    if not path.exists():
        return None
    import pyarrow

    try:
        rows = pq.read_table(path).to_pylist()
    except (pyarrow.ArrowException, OSError) as exc:
        problem = f"unreadable ({type(exc).__name__}: {exc})"
    else:
        if len(rows) == expected:
            return rows
        problem = f"{len(rows)} rows for {expected} negative pairs"
    log.warning("%s is broken (%s): rating the negative pairs again", path, problem)
    path.unlink()
    return None


def sampled_candidates(candidates_dir: str | Path, n: int, seed: int) -> list[dict]:
    """The first ``n`` candidates in the seeded order, reading every shard's ids but only the
    sampled rows' texts (memory stays flat at any pool size)."""
    import pyarrow.compute as pc

    from humpback.core.shards import read_shards, read_table

    chosen = pa.array([r["id"] for r in seeded_order(read_table(candidates_dir, ["id"]).to_pylist(), seed)[:n]],
                      pa.string())
    return [row for shard in read_shards(candidates_dir, ["id", "instruction", "text"])
            for row in shard.filter(pc.is_in(shard["id"], value_set=chosen)).to_pylist()]


def check_unit(negatives: list[dict], check_file: Path, settings: dict) -> Unit:
    """The negative pairs as one more unit of the score job, seeded from the settings; its output
    goes to ``check_file`` with each pair's kind."""

    def write(scored: pa.Table) -> None:
        rows = [{**p, "score": r["score"], "expected_score": r["expected_score"], "parse_error": r["parse_error"]}
                for p, r in zip(negatives, scored.to_pylist())]
        write_table_atomic(pa.Table.from_pylist(rows, schema=CHECK_SCHEMA), check_file)

    key = content_key(settings, length=64)
    pairs = pa.Table.from_pylist([{"id": p["id"], "instruction": p["instruction"], "text": p["text"]}
                                  for p in negatives])
    return Unit(check_file.name, key, len(negatives), lambda: pairs, write)

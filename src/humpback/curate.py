"""Self-curation: the curator M_{i-1} rates every candidate pair (score@i), then A_k^(i) keeps the
pairs scoring at least k (select@i).

Scores do not depend on the threshold, so a threshold sweep re-runs selection only. Scoring is
incremental and resumable per candidate shard (:mod:`humpback.shardmap`), keyed on the candidate
shard's bytes, the curator's content digest, the scorer and its settings, the engine, and the template.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from humpback.cluster import Job, Unit
from humpback.config import CurateConfig, RayConfig
from humpback.data.shards import write_table_atomic
from humpback.io import seeded_order
from humpback.prompts import rating_messages
from humpback.shardmap import key_seed, map_shards, pending_rows

if TYPE_CHECKING:  # the model stack (torch) loads only where a curator runs, not for select@i
    from humpback.models.generation import EngineSpec

log = logging.getLogger(__name__)

SCORE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # candidate id
        pa.field("iteration", pa.int32(), nullable=False),
        pa.field("curator", pa.string(), nullable=False),  # content digest of the curating model
        pa.field("scorer", pa.string(), nullable=False),  # generate | logits
        pa.field("score", pa.int8()),  # 1..5, null when the rating could not be parsed
        pa.field("expected_score", pa.float32()),  # logits scorer: sum_k k * p(k)
        pa.field("probs", pa.list_(pa.float32())),  # logits scorer: p("1").."p("5")
        pa.field("raw", pa.string(), nullable=False),  # the rating text, for audit
        pa.field("parse_error", pa.string()),  # why score is null
    ]
)
SCORES = (1, 2, 3, 4, 5)
_SCORE_RE = re.compile(r"score\s*\**\s*[:：=]\s*\**\s*(\d+(?:[.,]\d+)?)", re.IGNORECASE)


def parse_score(text: str) -> tuple[int | None, str | None]:
    """The last ``Score: n`` of a rating: (n, None) for n in 1..5, else (None, reason).

    Tolerant to case, spacing, Markdown bold and full-width colons; any Unicode decimal digits
    count (``Score: ４`` is 4). Reasons: ``no_score``, ``out_of_range``, ``not_an_integer``.
    """
    matches = _SCORE_RE.findall(text or "")
    if not matches:
        return None, "no_score"
    value = matches[-1]
    if "." in value or "," in value:
        return None, "not_an_integer"
    n = int("".join(str(unicodedata.digit(c)) for c in value))
    if n not in SCORES:
        return None, "out_of_range"
    return n, None


# ------------------------------------------------------------------------------------------ scorers
class GenerateScorer:
    """The paper's way: sample a rating with brief reasoning and parse its last ``Score:`` line."""

    name = "generate"

    def __init__(self, spec: EngineSpec):
        self.spec, self.engine = spec, spec.generator()

    def score(self, conversations: list[list[dict]], seed: int, on_batch=None) -> list[dict]:
        rows = []
        for text in self.engine.generate(conversations, self.spec.sampling(seed), on_batch):
            score, error = parse_score(text)
            rows.append({"score": score, "expected_score": None, "probs": None, "raw": text, "parse_error": error})
        return rows


def digit_token_ids(tok, prefix: str = "Score: ") -> list[int]:
    """Token ids that spell "1".."5" right after ``prefix`` (so the prompt can end with the prefix)."""
    from humpback.models.choices import choice_token_ids

    return choice_token_ids(tok, prefix, [str(k) for k in SCORES])


class LogitsScorer:
    """One forward pass per pair: the answer is forced to start with "Score: " and the next-token
    probabilities of "1".."5" (renormalised over the five) give the argmax and the expected score.
    No sampling and no reasoning text: far cheaper than generating a rating."""

    name = "logits"
    PREFIX = "Score: "

    def __init__(self, spec: EngineSpec, batch_size: int | None = None):
        self.reader = spec.choice_reader([str(k) for k in SCORES], self.PREFIX, batch_size)

    def score(self, conversations: list[list[dict]], seed: int, on_batch=None) -> list[dict]:
        rows = []
        for p in self.reader.probabilities(conversations, on_batch):
            best = max(SCORES, key=lambda k: p[k - 1])
            rows.append({"score": best, "expected_score": sum(k * q for k, q in zip(SCORES, p)), "probs": p,
                         "raw": json.dumps({str(k): round(q, 6) for k, q in zip(SCORES, p)}), "parse_error": None})
        return rows


def make_scorer(cfg: CurateConfig, spec: EngineSpec):
    """The configured scorer on the configured engine (``curate.generation.engine``)."""
    return LogitsScorer(spec, cfg.batch_size) if cfg.scorer == "logits" else GenerateScorer(spec)


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


# ---------------------------------------------------------------------------------------- score@i
@dataclass
class ScoreReport:
    pairs: int = 0
    counts: Counter = field(default_factory=Counter)
    unparseable: Counter = field(default_factory=Counter)
    shards_generated: int = 0
    shards_reused: int = 0
    files_removed: int = 0
    shards_replaced_broken: int = 0
    check: dict | None = None  # the curator check's numbers; None when curate.negatives is 0
    check_reused: bool = False
    ran_on: str = ""  # where the missing shards ran

    def metrics(self) -> dict:
        out = {
            "pairs": self.pairs,
            "scores": {str(k): self.counts.get(k, 0) for k in SCORES},
            "unparseable": sum(self.unparseable.values()),
            "unparseable_reasons": dict(sorted(self.unparseable.items())),
        }
        if self.check is not None:
            out["curator_check"] = self.check
        return out

    def run_stats(self) -> dict:
        """How this run went: for the log and MLflow, never for DVC-tracked metrics."""
        return {"shards_generated": self.shards_generated, "shards_reused": self.shards_reused,
                "stale_files_removed": self.files_removed, "broken_shards_replaced": self.shards_replaced_broken}


@dataclass
class ScoreJob(Job):
    """Rated pairs (id, instruction, text) -> score rows (settings only: it may run on a Ray worker)."""

    spec: EngineSpec
    cfg: CurateConfig
    template: str
    iteration: int
    curator_digest: str

    def setup(self) -> None:
        self.scorer = make_scorer(self.cfg, self.spec)

    def run(self, rows: pa.Table, key: str, progress) -> pa.Table:
        pairs = rows.select(["id", "instruction", "text"]).to_pylist()
        convs = [rating_messages(p["instruction"], p["text"], self.template) for p in pairs]
        scored = self.scorer.score(convs, key_seed(key), progress)
        return pa.Table.from_pylist(
            [{"id": p["id"], "iteration": self.iteration, "curator": self.curator_digest, "scorer": self.cfg.scorer,
              **r} for p, r in zip(pairs, scored)], schema=SCORE_SCHEMA)


def score_candidates(candidates_dir: str | Path, out_dir: str | Path, iteration: int, spec: EngineSpec,
                     cfg: CurateConfig, template: str, curator_digest: str, progress: bool = True,
                     ray: RayConfig = RayConfig()) -> ScoreReport:
    """Bring ``out_dir`` in line with the candidate shards; the curator is only loaded if work is
    left (here, or on the Ray workers of ``ray``)."""
    from tqdm.auto import tqdm

    settings = {"curator": curator_digest, "scorer": cfg.scorer, "template": template, "iteration": iteration,
                "generation": cfg.generation.model_dump() if cfg.scorer == "generate" else None, **spec.identity()}
    negatives, check_file, rated, extra = [], None, None, []
    if cfg.negatives:
        negatives = negative_pairs(_sampled_candidates(candidates_dir, cfg.negatives, cfg.sample_seed),
                                   cfg.negatives, cfg.sample_seed)
        blob = json.dumps([settings, negatives], sort_keys=True, default=str).encode()
        check_file = Path(out_dir) / f"_curator_check-{hashlib.sha256(blob).hexdigest()[:12]}.parquet"
        rated = _read_check(check_file, len(negatives))
        if rated is None and not negatives:  # fewer than two candidates: nothing to rate
            write_table_atomic(CHECK_SCHEMA.empty_table(), check_file)
            rated = []
        elif rated is None:
            extra = [_check_unit(negatives, check_file, settings)]
    bar = tqdm(total=pending_rows(candidates_dir, out_dir, settings) + sum(u.rows for u in extra),
               desc=f"score@{iteration}", unit="pair", disable=not progress, mininterval=1.0)
    job = ScoreJob(spec.resolved(), cfg, template, iteration, curator_digest)
    result = map_shards(candidates_dir, out_dir, settings, job, ray, bar.update,
                        on_done=lambda out: log.info("wrote %s", out.name),
                        keep={check_file.name} if check_file else (), columns=["id", "instruction", "text"],
                        extra=extra)
    bar.close()
    report = ScoreReport(shards_generated=result.generated, shards_reused=result.reused,
                         files_removed=result.removed, shards_replaced_broken=result.replaced_broken,
                         ran_on=result.ran_on)
    value = "expected_score" if cfg.scorer == "logits" else "score"
    real = []
    for out in result.outputs:
        t = pq.read_table(out, columns=["score", "expected_score", "parse_error"])
        report.pairs += t.num_rows
        report.counts.update(s for s in t["score"].to_pylist() if s is not None)
        report.unparseable.update(e for e in t["parse_error"].to_pylist() if e is not None)
        real += [v for v in t[value].to_pylist() if v is not None]
    if check_file is not None:
        report.check_reused = rated is not None
        rated = rated if rated is not None else pq.read_table(check_file).to_pylist()
        report.check = {"candidates_sampled": min(cfg.negatives, len(negatives) // 2),
                        **check_metrics(real, rated, value)}
    return report


def _read_check(path: Path, expected: int) -> list[dict] | None:
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


def _sampled_candidates(candidates_dir: str | Path, n: int, seed: int) -> list[dict]:
    """The first ``n`` candidates in the seeded order, reading every shard's ids but only the
    sampled rows' texts (memory stays flat at any pool size)."""
    import pyarrow.compute as pc

    from humpback.data.shards import read_shards, read_table

    chosen = pa.array([r["id"] for r in seeded_order(read_table(candidates_dir, ["id"]).to_pylist(), seed)[:n]],
                      pa.string())
    return [row for shard in read_shards(candidates_dir, ["id", "instruction", "text"])
            for row in shard.filter(pc.is_in(shard["id"], value_set=chosen)).to_pylist()]


def _check_unit(negatives: list[dict], check_file: Path, settings: dict) -> Unit:
    """The negative pairs as one more unit of the score job, seeded from the settings; its output
    goes to ``check_file`` with each pair's kind."""

    def write(scored: pa.Table) -> None:
        rows = [{**p, "score": r["score"], "expected_score": r["expected_score"], "parse_error": r["parse_error"]}
                for p, r in zip(negatives, scored.to_pylist())]
        write_table_atomic(pa.Table.from_pylist(rows, schema=CHECK_SCHEMA), check_file)

    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    pairs = pa.Table.from_pylist([{"id": p["id"], "instruction": p["instruction"], "text": p["text"]}
                                  for p in negatives])
    return Unit(check_file.name, key, len(negatives), lambda: pairs, write)


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
    from humpback.data.shards import read_table
    from humpback.stats import length_stats

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
    from humpback.data.shards import read_table

    scores = read_table(scores_dir, ["score", "expected_score"]).to_pylist()
    expected = [s["expected_score"] for s in scores if s["expected_score"] is not None]
    rows = []
    for i in range(int(4 / step) + 1):
        t = 1 + i * step
        rows.append({"threshold": t,
                     "kept_score": sum(s["score"] is not None and s["score"] >= t for s in scores) if t == int(t) else "",
                     "kept_expected_score": sum(e >= t for e in expected) if expected else ""})
    return rows

"""Self-curation: the curator M_{i-1} rates every candidate pair (score@i), then A_k^(i) keeps the
pairs scoring at least k (select@i).

Scores do not depend on the threshold, so a threshold sweep re-runs selection only. Scoring is
incremental and resumable per candidate shard (:mod:`humpback.core.units`), keyed on the candidate
shard's bytes, the curator's content digest, the scorer and its settings, the engine, and the template.
"""

from __future__ import annotations

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

from humpback.core.cluster import Job
from humpback.core.config import RayConfig
from humpback.core.keys import content_key
from humpback.core.shards import write_table_atomic
from humpback.core.units import key_seed, map_shards, pending_rows
from humpback.curate.check import (
    CHECK_SCHEMA,
    check_metrics,
    check_unit,
    negative_pairs,
    read_check,
    sampled_candidates,
)
from humpback.curate.config import SCORES, CurateConfig
from humpback.prompts import rating_messages

if TYPE_CHECKING:  # the model stack (torch) loads only where a curator runs, not for select@i
    from humpback.models.engine import EngineSpec

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
    from humpback.models.encoding import choice_token_ids

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
        negatives = negative_pairs(sampled_candidates(candidates_dir, cfg.negatives, cfg.sample_seed),
                                   cfg.negatives, cfg.sample_seed)
        check_file = Path(out_dir) / f"_curator_check-{content_key([settings, negatives], length=12)}.parquet"
        rated = read_check(check_file, len(negatives))
        if rated is None and not negatives:  # fewer than two candidates: nothing to rate
            write_table_atomic(CHECK_SCHEMA.empty_table(), check_file)
            rated = []
        elif rated is None:
            extra = [check_unit(negatives, check_file, settings)]
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

"""Self-augmentation: the backward model writes one instruction for every corpus segment.

Incremental per corpus shard through :mod:`humpback.core.units`: a candidate shard's key hashes the
corpus shard's bytes, the backward model's content digest, the sampling settings, the engine, the
prompt template and the length cap, and each shard is sampled with a seed derived from its key.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from humpback.augment.config import AugmentConfig
from humpback.augment.form import reads_as_request
from humpback.augment.hygiene import DROP_REASONS, UNWRAP_NAMES, clean_instruction, hygiene_problem
from humpback.core.cluster import Job
from humpback.core.config import RayConfig
from humpback.core.shards import SEGMENT_SCHEMA
from humpback.core.units import key_seed, map_shards, pending_rows, read_stats, with_stats
from humpback.models.engine import EngineSpec
from humpback.prompts import backward_messages

log = logging.getLogger(__name__)


CANDIDATE_SCHEMA = pa.schema(
    list(SEGMENT_SCHEMA)
    + [
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("backward_model", pa.string(), nullable=False),  # content digest of M_yx
        pa.field("gen_temperature", pa.float32(), nullable=False),
        pa.field("gen_top_p", pa.float32(), nullable=False),
        pa.field("gen_max_new_tokens", pa.int32(), nullable=False),
        pa.field("gen_seed", pa.int64(), nullable=False),  # the seed this shard was sampled with
    ]
)


@dataclass
class AugmentReport:
    segments: int = 0
    candidates: int = 0
    dropped: Counter = field(default_factory=Counter)  # generations left out, by DROP_REASONS
    unwrapped: Counter = field(default_factory=Counter)  # generations unwrapped, by UNWRAP_NAMES
    truncated: int = 0
    shards_total: int = 0
    shards_generated: int = 0
    shards_reused: int = 0
    files_removed: int = 0
    shards_replaced_broken: int = 0
    generated_segments: int = 0
    generation_seconds: float = 0.0
    ran_on: str = ""  # where the missing shards ran
    instructions: list[str] = field(default_factory=list, repr=False)

    def metrics(self) -> dict:
        """What the data determines: the same inputs give the same metrics file, however the run went."""
        from humpback.core.stats import length_stats

        well = sum(map(reads_as_request, self.instructions))
        return {
            "segments": self.segments,
            "candidates": self.candidates,
            "dropped": {reason: self.dropped.get(reason, 0) for reason in DROP_REASONS},
            "unwrapped": {rule: self.unwrapped.get(rule, 0) for rule in UNWRAP_NAMES},
            "truncated_generations": self.truncated,
            "shards": self.shards_total,
            "instruction_chars": length_stats([len(t) for t in self.instructions]),
            # candidates that read as requests (augment/form.py): of the candidates, and of all segments
            "well_formed": round(well / len(self.instructions), 4) if self.instructions else None,
            "well_formed_of_segments": round(well / self.segments, 4) if self.segments else None,
        }

    def run_stats(self) -> dict:
        """How this run went (reuse, speed): for the log and MLflow, never for DVC-tracked metrics."""
        rate = self.generated_segments / self.generation_seconds if self.generation_seconds else None
        return {"shards_generated": self.shards_generated, "shards_reused": self.shards_reused,
                "stale_files_removed": self.files_removed, "broken_shards_replaced": self.shards_replaced_broken,
                "segments_per_s": round(rate, 3) if rate else None, "ran_on": self.ran_on}


@dataclass
class AugmentJob(Job):
    """One corpus shard's rows -> its candidate shard (settings only: it may run on a Ray worker)."""

    spec: EngineSpec
    cfg: AugmentConfig
    template: str
    model_digest: str

    def setup(self) -> None:
        self.engine = self.spec.generator()

    def run(self, rows: pa.Table, key: str, progress) -> pa.Table:
        g, segments, seed = self.cfg.generation, rows.to_pylist(), key_seed(key)
        texts = self.engine.generate([backward_messages(s["text"], self.template) for s in segments],
                                     self.spec.sampling(seed), progress)
        out, dropped, unwrapped, cut = [], Counter(), Counter(), 0
        for seg, text in zip(segments, texts):
            instruction, was_cut, fired = clean_instruction(text, self.cfg.max_instruction_chars,
                                                            self.cfg.hygiene.unwrap)
            unwrapped.update(set(fired))
            if problem := hygiene_problem(instruction, seg["text"], self.template, self.cfg.hygiene):
                dropped[problem] += 1
                continue
            cut += was_cut
            out.append({**{k: seg[k] for k in SEGMENT_SCHEMA.names}, "instruction": instruction,
                        "backward_model": self.model_digest, "gen_temperature": g.temperature, "gen_top_p": g.top_p,
                        "gen_max_new_tokens": g.max_new_tokens, "gen_seed": seed})
        table = pa.Table.from_pylist(out, schema=CANDIDATE_SCHEMA)
        return with_stats(table, {"segments": len(segments), "left_out": sum(dropped.values()),
                                  "dropped": dict(dropped), "unwrapped": dict(unwrapped),
                                  "truncated": cut})


def augment(corpus_dir: str | Path, out_dir: str | Path, spec: EngineSpec, cfg: AugmentConfig, template: str,
            model_digest: str, progress: bool = True, ray: RayConfig = RayConfig()) -> AugmentReport:
    """Bring ``out_dir`` in line with the corpus shards; the engine is only built if work is left
    (here, or on the Ray workers of ``ray``)."""
    from tqdm.auto import tqdm

    settings = {"model": model_digest, "sampling": spec.sampling().as_dict(), "template": template,
                "max_instruction_chars": cfg.max_instruction_chars, "hygiene": cfg.hygiene.model_dump(),
                **spec.identity()}
    bar = tqdm(total=pending_rows(corpus_dir, out_dir, settings), desc="augment", unit="seg",
               disable=not progress, mininterval=1.0)
    start = time.perf_counter()
    job = AugmentJob(spec.resolved(), cfg, template, model_digest)
    result = map_shards(corpus_dir, out_dir, settings, job, ray, bar.update,
                        on_done=lambda out: log.info("wrote %s", out.name))
    bar.close()
    report = AugmentReport(shards_total=len(result.outputs), shards_generated=result.generated,
                           shards_reused=result.reused, files_removed=result.removed,
                           shards_replaced_broken=result.replaced_broken, generated_segments=result.rows_processed,
                           generation_seconds=time.perf_counter() - start if result.generated else 0.0,
                           ran_on=result.ran_on)
    for out in result.outputs:  # totals over every shard, generated now or before
        stats = read_stats(out)
        instructions = pq.read_table(out, columns=["instruction"])["instruction"].to_pylist()
        report.segments += stats.get("segments", len(instructions))
        report.dropped.update(stats.get("dropped", {"empty": stats.get("empty", 0)}))  # older shards: empty only
        report.unwrapped.update(stats.get("unwrapped", {}))
        report.truncated += stats.get("truncated", 0)
        report.candidates += len(instructions)
        report.instructions.extend(instructions)
    return report

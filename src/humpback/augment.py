"""Self-augmentation: the backward model writes one instruction for every corpus segment.

Incremental per corpus shard through :mod:`humpback.shardmap`: a candidate shard's key hashes the
corpus shard's bytes, the backward model's content digest, the sampling settings, the engine, the
prompt template and the length cap, and each shard is sampled with a seed derived from its key.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from humpback.cluster import Job
from humpback.config import AugmentConfig, HygieneConfig, RayConfig
from humpback.data.shards import SEGMENT_SCHEMA
from humpback.models.generation import EngineSpec
from humpback.prompts import PLACEHOLDER, backward_messages
from humpback.shardmap import key_seed, map_shards, pending_rows, read_stats, with_stats

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


_WORD = re.compile(r"\w+")
DROP_REASONS = ("empty", "echoes_prompt", "copies_segment")


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def hygiene_problem(instruction: str, segment: str, template: str, cfg: HygieneConfig) -> str | None:
    """Why a cleaned generation is no instruction (one of DROP_REASONS), or None: empty; sharing
    ``cfg.prompt_words`` consecutive words with the prompt's own text (the template without the
    segment: the model echoes its prompt); sharing ``cfg.segment_words`` consecutive words with
    its segment (it copies the text instead of asking for it)."""
    if not instruction:
        return "empty"
    if cfg.prompt_words and _ngrams(instruction, cfg.prompt_words) & _ngrams(template.replace(PLACEHOLDER, "\n"),
                                                                            cfg.prompt_words):
        return "echoes_prompt"
    if cfg.segment_words and _ngrams(instruction, cfg.segment_words) & _ngrams(segment, cfg.segment_words):
        return "copies_segment"
    return None


def clean_instruction(text: str, max_chars: int) -> tuple[str, bool]:
    """Strip whitespace and wrapping quotes; cut at ``max_chars``. Returns (text, was_cut)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if len(text) > max_chars:
        return text[:max_chars].rstrip(), True
    return text, False


@dataclass
class AugmentReport:
    segments: int = 0
    candidates: int = 0
    dropped: Counter = field(default_factory=Counter)  # generations left out, by DROP_REASONS
    truncated: int = 0
    shards_total: int = 0
    shards_generated: int = 0
    shards_reused: int = 0
    files_removed: int = 0
    shards_replaced_broken: int = 0
    generated_segments: int = 0
    generation_seconds: float = 0.0
    ran_on: str = ""  # where the missing shards ran
    instruction_chars: list[int] = field(default_factory=list, repr=False)

    def metrics(self) -> dict:
        """What the data determines: the same inputs give the same metrics file, however the run went."""
        from humpback.stats import length_stats

        return {
            "segments": self.segments,
            "candidates": self.candidates,
            "dropped": {reason: self.dropped.get(reason, 0) for reason in DROP_REASONS},
            "truncated_generations": self.truncated,
            "shards": self.shards_total,
            "instruction_chars": length_stats(self.instruction_chars),
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
        out, dropped, cut = [], Counter(), 0
        for seg, text in zip(segments, texts):
            instruction, was_cut = clean_instruction(text, self.cfg.max_instruction_chars)
            if problem := hygiene_problem(instruction, seg["text"], self.template, self.cfg.hygiene):
                dropped[problem] += 1
                continue
            cut += was_cut
            out.append({**{k: seg[k] for k in SEGMENT_SCHEMA.names}, "instruction": instruction,
                        "backward_model": self.model_digest, "gen_temperature": g.temperature, "gen_top_p": g.top_p,
                        "gen_max_new_tokens": g.max_new_tokens, "gen_seed": seed})
        table = pa.Table.from_pylist(out, schema=CANDIDATE_SCHEMA)
        return with_stats(table, {"segments": len(segments), "left_out": sum(dropped.values()),
                                  "dropped": dict(dropped), "truncated": cut})


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
        report.truncated += stats.get("truncated", 0)
        report.candidates += len(instructions)
        report.instruction_chars.extend(len(t) for t in instructions)
    return report

"""Self-augmentation: the backward model writes one instruction for every corpus segment.

Work is per corpus shard and keyed: a candidate shard is named
``<corpus shard stem>-<key>.parquet`` where the key hashes the corpus shard's bytes, the backward
model's content digest, the generation settings and the prompt template. A run

1. lists the candidate shards the current inputs call for,
2. deletes every other file in the output folder (stale keys, shards whose source is gone, temp files),
3. generates only the missing ones, each written atomically and seeded from its own key.

So a crash loses at most the shard in flight, an added corpus shard costs only its own generation,
and the folder always equals what a from-scratch run would write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from humpback.config import AugmentConfig
from humpback.data.shards import SEGMENT_SCHEMA, shard_files, write_table_atomic
from humpback.models.generation import GenerationEngine, Sampling
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
STATS_KEY = b"humpback.augment"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shard_key(corpus_shard: Path, model_digest: str, sampling: Sampling, template: str, max_chars: int) -> str:
    blob = json.dumps({"shard": file_digest(corpus_shard), "model": model_digest, "sampling": sampling.as_dict(),
                       "template": template, "max_instruction_chars": max_chars}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


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
    empty: int = 0
    truncated: int = 0
    shards_total: int = 0
    shards_generated: int = 0
    shards_reused: int = 0
    files_removed: int = 0
    generated_segments: int = 0
    generation_seconds: float = 0.0
    instruction_chars: list[int] = field(default_factory=list, repr=False)

    def metrics(self) -> dict:
        from humpback.stats import length_stats

        rate = self.generated_segments / self.generation_seconds if self.generation_seconds else None
        return {
            "segments": self.segments,
            "candidates": self.candidates,
            "empty_generations": self.empty,
            "truncated_generations": self.truncated,
            "shards": {"total": self.shards_total, "generated": self.shards_generated,
                       "reused": self.shards_reused, "removed_stale": self.files_removed},
            "throughput_segments_per_s": round(rate, 3) if rate else None,
            "instruction_chars": length_stats(self.instruction_chars),
        }


def _generate_shard(corpus_shard: Path, out: Path, key: str, engine: GenerationEngine, sampling: Sampling,
                    template: str, model_digest: str, cfg: AugmentConfig, on_batch) -> dict:
    segments = pq.read_table(corpus_shard).to_pylist()
    seed = int(key, 16) % (2**31)  # one seed per shard key: a rerun of this shard gives the same text
    shard_sampling = Sampling(sampling.temperature, sampling.top_p, sampling.max_new_tokens, seed)
    texts = engine.generate([backward_messages(s["text"], template) for s in segments], shard_sampling, on_batch)
    rows, empty, cut = [], 0, 0
    for seg, text in zip(segments, texts):
        instruction, was_cut = clean_instruction(text, cfg.max_instruction_chars)
        if not instruction:
            empty += 1
            continue
        cut += was_cut
        rows.append({**{k: seg[k] for k in SEGMENT_SCHEMA.names}, "instruction": instruction,
                     "backward_model": model_digest, "gen_temperature": sampling.temperature,
                     "gen_top_p": sampling.top_p, "gen_max_new_tokens": sampling.max_new_tokens, "gen_seed": seed})
    stats = {"segments": len(segments), "empty": empty, "truncated": cut}
    table = pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)
    table = table.replace_schema_metadata({STATS_KEY: json.dumps(stats).encode()})
    write_table_atomic(table, out)
    return stats


def augment(corpus_dir: str | Path, out_dir: str | Path, engine_factory: Callable[[], GenerationEngine],
            cfg: AugmentConfig, template: str, model_digest: str, progress: bool = True) -> AugmentReport:
    """Bring ``out_dir`` in line with the corpus shards; the engine is only built if work is left."""
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g = cfg.generation
    sampling = Sampling(g.temperature, g.top_p, g.max_new_tokens, g.seed)
    plan = []
    for shard in shard_files(corpus_dir):
        key = shard_key(shard, model_digest, sampling, template, cfg.max_instruction_chars)
        plan.append((shard, out_dir / f"{shard.stem}-{key}.parquet", key))
    wanted = {out for _, out, _ in plan}
    report = AugmentReport(shards_total=len(plan))
    for f in out_dir.iterdir():
        if f.is_file() and f not in wanted and f.name != ".gitignore":
            f.unlink()  # stale key, vanished source, or a temp file from a crash
            report.files_removed += 1
    todo = [(s, o, k) for s, o, k in plan if not o.exists()]
    report.shards_reused = len(plan) - len(todo)
    if todo:
        engine = engine_factory()
        total = sum(pq.read_metadata(s).num_rows for s, _, _ in todo)
        bar = tqdm(total=total, desc="augment", unit="seg", disable=not progress, mininterval=1.0)
        start = time.perf_counter()
        for shard, out, key in todo:
            _generate_shard(shard, out, key, engine, sampling, template, model_digest, cfg, bar.update)
            report.shards_generated += 1
            log.info("wrote %s", out.name)
        report.generation_seconds = time.perf_counter() - start
        report.generated_segments = total
        bar.close()
    for _, out, _ in plan:  # totals over every shard, generated now or before
        meta = pq.read_schema(out).metadata or {}
        stats = json.loads(meta.get(STATS_KEY, b"{}"))
        table = pq.read_table(out, columns=["instruction"])
        report.segments += stats.get("segments", table.num_rows)
        report.empty += stats.get("empty", 0)
        report.truncated += stats.get("truncated", 0)
        report.candidates += table.num_rows
        report.instruction_chars.extend(len(t) for t in table["instruction"].to_pylist())
    return report

"""Keyed units: the one resume mechanism of the pipeline's sharded and per-item work.

A unit of work is named by a content key of everything its result depends on; a result is kept
only under its key, so a rerun computes exactly the units whose key has no result yet, and the
results of keys no longer wanted are removed (the output then equals a from-scratch run's). Two
stores hold results: a folder of Parquet shards, one file per unit (:func:`map_shards`: augment,
score@i, and the curator check as an extra unit beside the shards), and a file of JSON lines, one
line per unit (:class:`KeyedLines`: evaluate@m's verdicts, each appended and synced as soon as the
judge returns it). Not resumed here: answer@m (one unit, the whole small eval set, rerun whole), a
training (it resumes from its checkpoints, ``train.recipe``) and AlpacaEval's annotator (its own
cache).

Map over shards:

Each input shard maps to one output shard named ``<input stem>-<key>.parquet``, where the key
hashes everything the output depends on (the input shard's bytes and the caller's settings). A run

1. lists the output shards the current inputs call for,
2. deletes every other file in the output folder (stale keys, outputs whose input is gone, temp files),
3. verifies each existing output before trusting it (it reads whole, and its rows plus the rows its
   stats say were left out equal the input shard's rows); a broken one (a full disk, an interrupted
   copy, a damaged cache file) is logged, deleted and computed again,
4. computes only the missing outputs, here or on a Ray cluster (:mod:`humpback.core.cluster`), each
   written atomically by this process as soon as it is done.

So a crash loses at most the shard in flight, one new input shard costs one shard of work, and the
folder always equals what a from-scratch run would write (the work function must be deterministic
for a given key: seed it from the key).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from humpback.core.cluster import Job, Unit, run_units
from humpback.core.config import RayConfig
from humpback.core.files import atomic_write
from humpback.core.keys import content_key, path_md5
from humpback.core.shards import shard_files, write_table_atomic

STATS_KEY = b"humpback.stats"
# stats keys that count input rows a work function left out on purpose ("empty": shards written
# before augment's hygiene rules, which count every drop under "left_out")
LEFT_OUT_STATS = ("empty", "left_out")

log = logging.getLogger(__name__)


def shard_key(input_shard: Path, settings: dict) -> str:
    return content_key({"shard": path_md5(input_shard), **settings}, length=12)


def key_seed(key: str) -> int:
    """A sampling seed derived from a shard key: reruns of the shard draw the same samples."""
    return int(key, 16) % (2**31)


def with_stats(table: pa.Table, stats: dict) -> pa.Table:
    """Attach per-shard counts (rows left out, ...) to the shard's Parquet metadata."""
    return table.replace_schema_metadata({STATS_KEY: json.dumps(stats).encode()})


def read_stats(path: Path) -> dict:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(STATS_KEY, b"{}"))


def verify(out: Path, input_shard: Path) -> str | None:
    """None if ``out`` reads whole and accounts for every row of ``input_shard``; else what is wrong."""
    import pyarrow

    try:
        rows = pq.read_table(out).num_rows  # the footer, and every page decompressed
        stats = read_stats(out)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    left_out = sum(int(stats.get(k, 0)) for k in LEFT_OUT_STATS)
    expected = pq.read_metadata(input_shard).num_rows
    if rows + left_out != expected:
        return f"{rows} rows and {left_out} left out, for {expected} input rows"
    return None


@dataclass
class MapResult:
    outputs: list[Path] = field(default_factory=list)  # one per input shard, in input order
    generated: int = 0
    reused: int = 0
    removed: int = 0
    replaced_broken: int = 0  # existing outputs that failed verification and were computed again
    rows_processed: int = 0  # input rows of the shards computed in this run
    ran_on: str = "nothing to run"  # where the missing shards ran (humpback.core.cluster.run_units)


def map_shards(input_dir: str | Path, out_dir: str | Path, settings: dict, job: Job, ray: RayConfig = RayConfig(),
               progress: Callable[[int], None] = lambda n: None, on_done: Callable[[Path], None] | None = None,
               keep: Collection[str] = (), columns: list[str] | None = None, extra: Sequence[Unit] = ()) -> MapResult:
    """Bring ``out_dir`` in line with ``input_dir``; ``job.run(rows, key)`` computes one output
    from an input shard's rows (``columns`` of them, or all).

    The job's engine is built only when an output is missing (never when all exist), here or on the
    Ray workers (``ray``). Files in ``out_dir`` that are neither wanted outputs nor named in
    ``keep`` are removed (stale work of other settings). ``extra`` units run with the missing
    shards, on the same replicas (the curator check's negative pairs).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = [(s, out_dir / f"{s.stem}-{k}.parquet", k) for s in shard_files(input_dir)
            for k in [shard_key(s, settings)]]
    wanted = {out for _, out, _ in plan}
    result = MapResult(outputs=[out for _, out, _ in plan])
    for f in out_dir.iterdir():
        if f.is_file() and f not in wanted and f.name not in keep:
            f.unlink()
            result.removed += 1
    for shard, out, _ in plan:
        problem = verify(out, shard) if out.exists() else None
        if problem:
            log.warning("%s is broken (%s): computing it again", out, problem)
            out.unlink()
            result.replaced_broken += 1
    todo = [(s, o, k) for s, o, k in plan if not o.exists()]
    result.reused = len(plan) - len(todo)

    def unit(shard: Path, out: Path, key: str) -> Unit:
        def write(table: pa.Table) -> None:
            write_table_atomic(table, out)
            result.generated += 1
            result.rows_processed += rows
            if on_done:
                on_done(out)

        rows = pq.read_metadata(shard).num_rows
        source = shard.resolve()  # on Ray the read runs in a worker process, whose working folder differs
        return Unit(out.name, key, rows, lambda: pq.read_table(source, columns=columns), write)

    result.ran_on = run_units(job, [unit(*t) for t in todo] + list(extra), ray, progress)
    return result


def pending_rows(input_dir: str | Path, out_dir: str | Path, settings: dict) -> int:
    """Input rows whose output shard does not exist yet (the size of a progress bar)."""
    out_dir = Path(out_dir)
    return sum(pq.read_metadata(s).num_rows for s in shard_files(input_dir)
               if not (out_dir / f"{s.stem}-{shard_key(s, settings)}.parquet").exists())


class KeyedLines:
    """Results kept as JSON lines, one per key (``{"key": ..., **result}``), in one file: each
    :meth:`add` is appended and synced at once, so a crash loses at most the line being written (a
    torn last line is ignored on reading); :meth:`prune` rewrites the file, atomically, with the
    keys still wanted only, in key order."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        self._fh = None

    def add(self, key: str, result: dict) -> None:
        entry = {"key": key, **result}
        self.entries[key] = entry
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def prune(self, keep: set[str]) -> None:
        """Keep only the results of ``keep``, so the file equals a from-scratch run's."""
        self.close()
        with atomic_write(self.path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for key in sorted(keep & set(self.entries)):
                fh.write(json.dumps(self.entries[key], ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

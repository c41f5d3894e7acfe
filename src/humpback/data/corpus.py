"""Build the unlabelled corpus: raw documents (data/raw) -> segments -> filters -> dedup -> Parquet shards,
as a datatrove pipeline (the library FineWeb was built with).

The plan, each step run by datatrove's executors (:mod:`humpback.data.executors`) over ``corpus.tasks``
tasks, task r reading the r-th contiguous block of data/raw (the blocks split its bytes evenly):

1. ``segment``: read, cut at headers, the paper's filters (:mod:`humpback.data.steps`); each task's
   segments go to a Parquet file, and its exact-dedup (or MinHash) signatures to disk.
2. exact dedup (``exact-find``, one task; ``exact-filter``, every task): datatrove's sorted merge of the
   signatures keeps the first of equal texts; the MinHash signatures are taken of what is left.
3. MinHash (``minhash-buckets``, a task per band; ``minhash-cluster``, one task): datatrove's
   near-duplicate pairs per band, then clusters, one segment kept of each.
4. ``finish``, here: the tasks' files in task order (the documents' stored order) less the
   duplicates, the per-document and total caps, written as shards of ``corpus.shard_size``, and
   ``manifest.json``, the documents they came from.

Memory stays flat: a task holds a batch of rows and its signatures, the merges stream sorted files,
the clusters hold only the segments that have duplicates, and the finish holds one task's
per-document counts and a count per kept length while the manifest streams to disk. The same
``tasks`` give the same bytes however many workers ran them and wherever. The report's counts add
up: every segment is kept or dropped for exactly one reason, and every document is used or skipped
for one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from shutil import copyfileobj, rmtree

from tqdm.auto import tqdm

from humpback.core.config import RayConfig
from humpback.core.files import atomic_write
from humpback.core.shards import SEGMENT_SCHEMA, ShardWriter, shard_files
from humpback.core.stats import LengthCounts
from humpback.data.config import CorpusConfig, CorpusRunConfig
from humpback.data.executors import Step, run_steps, step_counts

log = logging.getLogger(__name__)


@dataclass
class CorpusReport:
    documents_read: int = 0
    documents_skipped: Counter = field(default_factory=Counter)
    segments_input: int = 0
    segments_kept: int = 0
    segments_dropped: Counter = field(default_factory=Counter)
    kept_chars: LengthCounts = field(default_factory=LengthCounts, repr=False)
    shards: list[str] = field(default_factory=list)
    # how many documents data/corpus/manifest.json lists: every segmented document, in order, with its
    # kept count; under the max_segments cap, those up to the last one a kept segment comes from
    documents: int = 0
    capped: bool = False

    def metrics(self) -> dict:
        return {
            "documents": {
                "read": self.documents_read,
                "used": self.documents_read - sum(self.documents_skipped.values()),
                "skipped": dict(sorted(self.documents_skipped.items())),
            },
            "segments": {
                "input": self.segments_input,
                "kept": self.segments_kept,
                "dropped": dict(sorted(self.segments_dropped.items())),
            },
            "kept_chars": self.kept_chars.stats(),
            "shards": len(self.shards),
            "stopped_at_max_segments": self.capped,
        }


@dataclass
class _Plan:
    steps: list[Step]
    last: Path  # the task files the finish reads
    finish_filter: str | None  # "exact" | "near": the dedup filter the finish applies


def work_key(cfg: CorpusConfig, raw_dir: str | Path) -> str:
    """The work folder of one build: its settings, its input and this code. A rerun of the same build
    resumes its finished tasks; anything else starts afresh."""
    here = Path(__file__).parent
    code = b"".join(p.read_bytes() for p in sorted(here.glob("*.py")))
    raw = [p.name for p in shard_files(raw_dir)]
    blob = json.dumps([cfg.model_dump(mode="json"), raw, str(Path(raw_dir).resolve())]).encode() + code
    return hashlib.sha256(blob).hexdigest()[:16]


def plan(cfg: CorpusConfig, raw_dir: str | Path, work: Path) -> _Plan:
    from humpback.data.dedup import exact_config, minhash_config
    from humpback.data.filters import detect_language
    from humpback.data.steps import ReadRaw, ReadTask, Segment, WriteTask, minhash_signature, segment_filters

    d, tasks = cfg.dedup, cfg.tasks
    first = [ReadRaw(raw_dir), Segment(work / "documents", cfg.html_main_content), *segment_filters(cfg),
             WriteTask(work / "segments")]
    steps = [Step("segment", first, tasks, warm=lambda: detect_language("warm"))]
    last, finish_filter = work / "segments", None
    if d.exact:
        from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter, ExactDedupSignature, ExactFindDedups

        first.append(ExactDedupSignature(str(work / "exact-sigs"), config=exact_config()))
        steps.append(Step("exact-find", [ExactFindDedups(str(work / "exact-sigs"), str(work / "exact-dups"),
                                                         config=exact_config())], 1))
        if d.near:
            steps.append(Step("exact-filter", [ReadTask(work / "segments"),
                                               ExactDedupFilter(str(work / "exact-dups"), config=exact_config()),
                                               WriteTask(work / "unique"), minhash_signature(work / "minhash-sigs", d)],
                              tasks))
            last = work / "unique"
        else:
            finish_filter = "exact"
    elif d.near:
        first.append(minhash_signature(work / "minhash-sigs", d))
    if d.near:
        from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster

        mh = minhash_config(d)
        steps.append(Step("minhash-buckets", [MinhashDedupBuckets(str(work / "minhash-sigs"),
                                                                  str(work / "minhash-pairs"), config=mh)], d.buckets))
        steps.append(Step("minhash-cluster", [MinhashDedupCluster(str(work / "minhash-pairs"),
                                                                  str(work / "minhash-remove"), config=mh)], 1))
        finish_filter = "near"
    return _Plan(steps, last, finish_filter)


def build_corpus(cfg: CorpusConfig, raw_dir: str | Path, out_dir: str | Path, progress: bool = True,
                 run: CorpusRunConfig | None = None, ray: RayConfig | None = None) -> CorpusReport:
    if not shard_files(raw_dir):
        raise FileNotFoundError(f"{raw_dir} holds no raw documents: run `dvc repro raw` (see raw.sources)")
    run = run or CorpusRunConfig()
    for left in Path(run.work_dir).glob(f"*{_REMOVING}"):  # a run killed while it removed its work folder
        rmtree(left, ignore_errors=True)
    work = Path(run.work_dir) / work_key(cfg, raw_dir)
    p = plan(cfg, raw_dir, work)
    run_steps(p.steps, run, ray or RayConfig(), work)
    report = CorpusReport()
    _count_steps(report, p, work)
    _finish(cfg, p, work, out_dir, report, progress)
    dropped = sum(report.segments_dropped.values())
    if report.segments_kept + dropped != report.segments_input:  # every segment kept or dropped for one reason
        raise RuntimeError(f"corpus counts do not add up: {report.segments_kept} kept + {dropped} dropped != "
                           f"{report.segments_input} segments; the work folder {work} is kept for a look")
    _discard(work)
    return report


_REMOVING = ".removing"


def _discard(work: Path) -> None:
    """Remove a finished run's work folder, renamed first: a kill midway through the removal must not
    leave the completion marks of tasks whose files are gone (a rerun would skip those tasks)."""
    gone = work.with_name(work.name + _REMOVING)
    rmtree(gone, ignore_errors=True)
    work.rename(gone)
    rmtree(gone, ignore_errors=True)


def _count_steps(report: CorpusReport, p: _Plan, work: Path) -> None:
    segment = step_counts(work, p.steps[0])
    read, cut = segment[0], segment[1]
    report.documents_read = read["documents"]
    report.documents_skipped.update({k.removeprefix("skipped_"): v for k, v in cut.items() if k.startswith("skipped_")})
    report.segments_input = cut["segments"]
    for rule in segment[2:6]:
        report.segments_dropped.update({k.removeprefix("dropped_"): v for k, v in rule.items()
                                        if k.startswith("dropped_")})
    exact_filter = next((s for s in p.steps if s.name == "exact-filter"), None)
    if exact_filter is not None:
        report.segments_dropped["exact_duplicate"] += step_counts(work, exact_filter)[1]["dropped"]


def _finish(cfg: CorpusConfig, p: _Plan, work: Path, out_dir: str | Path, report: CorpusReport, progress: bool) -> None:
    """The tasks' files in task order, less the duplicates and past the caps, as the output shards, and
    the manifest of the documents they came from. Memory stays flat: one task's per-document counts at a
    time, the manifest's entries streamed to disk."""
    from humpback.data.steps import read_rows, read_task, task_rows

    writer = ShardWriter(out_dir, SEGMENT_SCHEMA, cfg.shard_size)
    reason = {"exact": "exact_duplicate", "near": "near_duplicate"}.get(p.finish_filter)
    total = sum(task_rows(p.last, r) for r in range(cfg.tasks))
    bar = tqdm(total=total, desc="corpus", unit="seg", disable=not progress, mininterval=1.0)
    documents = _DocumentList(work / "manifest-documents.json")
    for rank in range(cfg.tasks):
        rows = task_rows(p.last, rank)
        kept_per_doc: Counter = Counter()  # a document's segments are all in its task's file
        passed = 0
        for doc in _dedup_filter(p, work, read_task(p.last, rank), rank, cfg.tasks):
            passed += 1
            meta = doc.metadata
            if cfg.max_segments is not None and report.segments_kept >= cfg.max_segments:
                report.capped = True
                report.segments_dropped["max_segments"] += 1
                continue
            if cfg.max_segments_per_document is not None and kept_per_doc[meta["doc"]] >= cfg.max_segments_per_document:
                report.segments_dropped["document_cap"] += 1
                continue
            kept_per_doc[meta["doc"]] += 1
            writer.add({"id": doc.id, "text": doc.text, "source": meta["source"], "url": meta["url"],
                        "header": meta["header"], "n_chars": len(doc.text)})
            report.segments_kept += 1
            report.kept_chars.add(len(doc.text))
            bar.set_postfix(kept=report.segments_kept, refresh=False)
        if reason:
            report.segments_dropped[reason] += rows - passed
        for row in read_rows(work / "documents", rank):
            kept = kept_per_doc[row["doc"]]
            documents.add({"url": row["url"], "name": row["name"], "license": row["license"], "segments_kept": kept},
                          used=kept > 0)
        bar.update(rows)
    bar.close()
    report.shards = [path.name for path in writer.close()]
    if report.capped:  # the documents up to the last one a kept segment comes from
        documents.cut_after_last_used()
    report.documents = documents.close()
    write_manifest(Path(out_dir) / "manifest.json", report.shards, documents)
    report.segments_dropped = Counter({k: v for k, v in report.segments_dropped.items() if v})


class _DocumentList:
    """The manifest's ``documents``, written to a file as the finish reads them (a crawl has millions),
    each entry as ``json.dumps(manifest, indent=2)`` would lay it out inside the manifest."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "wb")
        self.count, self._used_end, self._used_count = 0, 0, 0

    def add(self, entry: dict, used: bool) -> None:
        text = json.dumps(entry, indent=2, ensure_ascii=False).replace("\n", "\n    ")
        self._file.write(((",\n    " if self.count else "    ") + text).encode())
        self.count += 1
        if used:
            self._used_end, self._used_count = self._file.tell(), self.count

    def cut_after_last_used(self) -> None:
        self._file.truncate(self._used_end)
        self._file.seek(self._used_end)
        self.count = self._used_count

    def close(self) -> int:
        self._file.close()
        return self.count


def write_manifest(path: Path, shards: list[str], documents: _DocumentList) -> None:
    """data/corpus/manifest.json: ``{"shards": [...], "documents": [...]}``, the bytes ``write_json`` would
    write, with the documents copied from their file rather than held in memory."""
    head = json.dumps({"shards": shards}, indent=2, ensure_ascii=False)[:-2]  # without its closing "\n}"
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(f'{head},\n  "documents": '.encode())
        if not documents.count:
            f.write(b"[]")
        else:
            f.write(b"[\n")
            with open(documents.path, "rb") as src:
                copyfileobj(src, f, length=1 << 20)
            f.write(b"\n  ]")
        f.write(b"\n}\n")


def _dedup_filter(p: _Plan, work: Path, docs, rank: int, tasks: int):
    if p.finish_filter == "near":
        from datatrove.pipeline.dedup.minhash import MinhashDedupFilter

        if not (work / "minhash-remove" / f"{rank:06d}.remove").exists():
            return docs  # nothing of this task is a near-duplicate (datatrove would warn)
        return MinhashDedupFilter(str(work / "minhash-remove")).run(docs, rank, tasks)
    if p.finish_filter == "exact":
        from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter

        from humpback.data.dedup import exact_config

        return ExactDedupFilter(str(work / "exact-dups"), config=exact_config()).run(docs, rank, tasks)
    return docs

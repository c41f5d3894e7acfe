"""The corpus stage's own datatrove steps: read a block of data/raw, cut it at headers, apply the
paper's filters, and keep each task's segments in one Parquet file between the dedup steps.

Every step is a :class:`datatrove.pipeline.base.PipelineStep`, so datatrove's executors run it in a
local process pool, on Ray or on Slurm, and count what it does in their stats: the filters are
:class:`~datatrove.pipeline.filters.base_filter.BaseFilter` s whose drop reasons (``dropped_<reason>``)
become the keys of ``metrics/corpus.json``. Task ``r`` of ``T`` reads the ``r``-th contiguous block of
data/raw's documents (blocks of about equal bytes), so the tasks' outputs in task order are the documents
in their stored order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document as Doc
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.word_tokenizers import WordTokenizer

from humpback.core.shards import shard_files
from humpback.data.config import CorpusConfig, DedupConfig
from humpback.data.dedup import content_id, minhash_config, normalise
from humpback.data.filters import (
    SENTENCE_SPLIT,
    WORD,
    header_reason,
    language_reason,
    length_reason,
    repetition_reason,
)
from humpback.data.segment import segment

log = logging.getLogger(__name__)

# One task's segments between steps: the segment, where it came from, and which task cut it.
TASK_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("header", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("name", pa.string()),
    pa.field("license", pa.string()),
    pa.field("doc", pa.int64(), nullable=False),  # the document's position in data/raw
    pa.field("task", pa.int32(), nullable=False),
])
_META = [f.name for f in TASK_SCHEMA if f.name not in ("id", "text")]
# Each task's segmented documents, in order (the corpus manifest: provenance of every document read).
DOCS_SCHEMA = pa.schema([
    pa.field("doc", pa.int64(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("name", pa.string()),
    pa.field("license", pa.string()),
])
_BATCH = 1024  # rows per read or write: memory stays flat whatever a task holds


@dataclass(frozen=True)
class RowGroup:
    """One Parquet row group of data/raw, as its footer describes it."""

    path: str
    index: int  # within its file
    first: int  # the position of its first document in data/raw
    rows: int
    start: int  # where its bytes begin in data/raw's uncompressed bytes
    size: int  # uncompressed bytes


def raw_row_groups(raw_dir: str | Path) -> list[RowGroup]:
    """data/raw's row groups in order, from the Parquet footers alone."""
    groups, first, start = [], 0, 0
    for path in shard_files(raw_dir):
        meta = pq.ParquetFile(path).metadata
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            size = max(rg.total_byte_size, 1)
            groups.append(RowGroup(str(path), i, first, rg.num_rows, start, size))
            first, start = first + rg.num_rows, start + size
    return groups


def task_block(groups: list[RowGroup], rank: int, tasks: int) -> tuple[int, int]:
    """The documents [start, stop) of task ``rank``: contiguous blocks that split data/raw's bytes
    evenly (web pages differ in size a thousandfold, so equal counts of documents are not equal work),
    cut inside a row group as if its documents were of equal size. Footers only: every task computes
    the same cuts without reading a document."""
    total = sum(g.size for g in groups)

    def document_at(offset: int) -> int:
        for g in groups:
            if offset < g.start + g.size:
                return g.first + (offset - g.start) * g.rows // g.size
        return groups[-1].first + groups[-1].rows if groups else 0

    return document_at(total * rank // tasks), document_at(total * (rank + 1) // tasks)


class ReadRaw(PipelineStep):
    """Task r's block of data/raw's documents; only the row groups that hold it are read, and a few
    rows at a time become Python objects (a raw document runs to megabytes)."""

    type = "📖 - READER"
    name = "data/raw"

    def __init__(self, raw_dir: str | Path):
        super().__init__()
        self.raw_dir = str(raw_dir)

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Doc]:
        groups = raw_row_groups(self.raw_dir)
        start, stop = task_block(groups, rank, world_size)
        path, file = None, None
        for g in groups:
            lo, hi = max(start - g.first, 0), min(stop - g.first, g.rows)
            if lo >= hi:
                continue
            if g.path != path:
                path, file = g.path, pq.ParquetFile(g.path)
            block = file.read_row_group(g.index).slice(lo, hi - lo)
            for i, row in enumerate((r for b in block.to_batches(max_chunksize=64) for r in b.to_pylist()),
                                    start=g.first + lo):
                self.stat_update("documents")
                yield Doc(text=row["text"], id=str(i), metadata={
                    "format": row["format"], "source": row["source"], "url": row["url"],
                    "name": row["name"], "license": row["license"], "doc": i})


class Segment(PipelineStep):
    """Each document's header segments (:mod:`humpback.data.segment`), one datatrove document each."""

    type = "✂️ - SEGMENTER"
    name = "header segments"

    def __init__(self, docs_folder: str | Path, html_main_content: bool = False):
        super().__init__()
        self.docs_folder = str(docs_folder)
        self.html_main_content = html_main_content

    def run(self, data: Iterator[Doc], rank: int = 0, world_size: int = 1) -> Iterator[Doc]:
        with TaskFile(task_path(self.docs_folder, rank), DOCS_SCHEMA) as documents:
            for doc in data:
                yield from self._segments(doc, rank, documents)

    def _segments(self, doc: Doc, rank: int, documents: "TaskFile") -> Iterator[Doc]:
        meta = doc.metadata
        with self.track_time():
            try:
                segments = segment(doc.text, meta["format"], self.html_main_content)
            except Exception as exc:  # a parser choking on one page must not end the stage
                log.warning("skipping %s: cannot segment as %s (%s)", meta["url"], meta["format"], exc)
                self.stat_update("skipped_unparseable")
                return
        if not segments:
            self.stat_update("skipped_no_segments")
            return
        documents.add({k: meta[k] for k in DOCS_SCHEMA.names})
        for seg in segments:
            self.stat_update("segments")
            yield Doc(text=seg.text, id=content_id(seg.text), metadata={
                "header": seg.header, "source": meta["source"], "url": meta["url"], "name": meta["name"],
                "license": meta["license"], "doc": meta["doc"], "task": rank})


class _Rule(BaseFilter):
    """A filter of :mod:`humpback.data.filters`: drops a segment with that module's reason."""

    def __init__(self, cfg: CorpusConfig):
        super().__init__()
        self.cfg = cfg

    def reason(self, doc: Doc) -> str | None:
        raise NotImplementedError

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        reason = self.reason(doc)
        return True if reason is None else (False, reason)


class HeaderRule(_Rule):
    name = "header rule"

    def reason(self, doc: Doc) -> str | None:
        return header_reason(doc.metadata["header"], self.cfg.header, self.cfg.allow_headerless)


class LengthRule(_Rule):
    name = "length window"

    def reason(self, doc: Doc) -> str | None:
        return length_reason(doc.text, self.cfg.min_chars, self.cfg.max_chars)


class RepetitionRule(_Rule):
    name = "repeated sentences"

    def reason(self, doc: Doc) -> str | None:
        return repetition_reason(doc.text, self.cfg.repetition)


class LanguageRule(_Rule):
    name = "language"

    def reason(self, doc: Doc) -> str | None:
        return language_reason(doc.text, self.cfg.language)


def segment_filters(cfg: CorpusConfig) -> list[_Rule]:
    """The paper's filters, cheapest first."""
    return [HeaderRule(cfg), LengthRule(cfg), RepetitionRule(cfg), LanguageRule(cfg)]


def task_path(folder: str | Path, rank: int) -> Path:
    return Path(folder) / f"{rank:05d}.parquet"


class WriteTask(PipelineStep):
    """Writes every segment that reaches it to ``folder/<rank>.parquet`` (an empty file for none, so the
    file of task r is always there) and passes it on: the dedup signature steps that follow number the
    segments in the same order as the file's rows."""

    type = "💽 - WRITER"
    name = "task file"

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = str(folder)

    def run(self, data: Iterator[Doc], rank: int = 0, world_size: int = 1) -> Iterator[Doc]:
        with TaskFile(task_path(self.folder, rank), TASK_SCHEMA) as out:
            for doc in data:
                out.add({"id": doc.id, "text": doc.text, **{k: doc.metadata[k] for k in _META}})
                self.stat_update("written")
                yield doc


class TaskFile:
    """A task's Parquet file, written a batch at a time; it appears whole when closed, or not at all."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._writer = pq.ParquetWriter(self._tmp, schema)
        self._rows: list[dict] = []

    def add(self, row: dict) -> None:
        self._rows.append(row)
        if len(self._rows) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
        self._rows = []

    def __enter__(self) -> "TaskFile":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self._flush()  # also an empty file: the file of every task is there
        self._writer.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def read_rows(folder: str | Path, rank: int) -> Iterator[dict]:
    for batch in pq.ParquetFile(task_path(folder, rank)).iter_batches(batch_size=_BATCH):
        yield from batch.to_pylist()


def read_task(folder: str | Path, rank: int) -> Iterator[Doc]:
    """The rows :class:`WriteTask` wrote for task ``rank``, in order, as datatrove documents."""
    for row in read_rows(folder, rank):
        yield Doc(text=row["text"], id=row["id"], metadata={k: row[k] for k in _META})


def task_rows(folder: str | Path, rank: int) -> int:
    return pq.ParquetFile(task_path(folder, rank)).metadata.num_rows


class ReadTask(PipelineStep):
    type = "📖 - READER"
    name = "task file"

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = str(folder)

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Doc]:
        for doc in read_task(self.folder, rank):
            self.stat_update("read")
            yield doc


class Words(WordTokenizer):
    """``\\w+`` words, as the repetition filter counts them, for the MinHash shingles: datatrove's
    English tokenizer is NLTK's, whose punkt data is a download."""

    def __init__(self):
        super().__init__("en")

    def word_tokenize(self, text: str) -> list[str]:
        return WORD.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in SENTENCE_SPLIT.split(text) if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in WORD.finditer(text)]


def minhash_signature(folder: str | Path, cfg: DedupConfig):
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    return MinhashDedupSignature(output_folder=str(folder), config=minhash_config(cfg), language=Words())


def duplicates_within(texts: list[str], cfg: DedupConfig) -> list[str | None]:
    """For a handful of texts (one file, in `humpback segment`): each one's duplicate reason against the
    texts before it that were kept, with the same normalisation and the same MinHash bands as the stage."""
    sig = minhash_signature("memory://unused", cfg)
    seen: set[str] = set()
    bands: set[tuple[int, tuple]] = set()
    reasons: list[str | None] = []
    for text in texts:
        key = normalise(text)
        if cfg.exact and key in seen:
            reasons.append("exact_duplicate")
            continue
        mine: set[tuple[int, tuple]] = set()
        if cfg.near:
            shingles = sig.get_shingles(text)
            mine = {(i, tuple(b)) for i, b in enumerate(sig.get_signature(shingles))} if shingles.size else set()
            if mine & bands:
                reasons.append("near_duplicate")
                continue
        seen.add(key)
        bands |= mine
        reasons.append(None)
    return reasons

"""The raw corpus node (data/raw): documents with their provenance, the only input of `corpus`.

``build_raw`` snapshots the configured sources (local files, a streamed hub dataset) into Parquet
shards with one row per usable document: ``id`` (content hash), ``source``, ``url``, ``name``,
``license``, ``format``, ``text``. Unusable documents are counted by reason, never stored. Because the
corpus stage reads data/raw only, DVC's hash of this folder says exactly which documents went in.

``snapshot_packages`` is the explicit act that turns a live source, the project pages of the installed
Python distributions, into a file that the raw stage can read (the demo's ``data/demo/corpus``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from humpback.core.files import atomic_write
from humpback.core.shards import RAW_ROW_GROUP, RAW_SCHEMA, ShardWriter, read_shards, shard_files
from humpback.core.stats import LengthCounts
from humpback.data.config import RawConfig
from humpback.data.dedup import content_id
from humpback.data.sources import Document, iter_documents, iter_python_packages

log = logging.getLogger(__name__)

# Licences under which a package's project page may be redistributed with attribution.
PERMISSIVE = r"(?i)\b(MIT|BSD|Apache|PSF|Python Software Foundation|ISC|Unlicense|0BSD|Zlib|HPND|MPL|CC0)\b"


@dataclass
class RawReport:
    documents_read: int = 0
    skipped: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    licenses: Counter = field(default_factory=Counter)
    decoded_from: Counter = field(default_factory=Counter)  # documents that were not UTF-8, by encoding
    chars: LengthCounts = field(default_factory=LengthCounts, repr=False)  # bounded by max_document_chars
    shards: list[str] = field(default_factory=list)

    def metrics(self) -> dict:
        return {
            "documents": {
                "read": self.documents_read,
                "kept": self.chars.total(),
                "skipped": dict(sorted(self.skipped.items())),
                "by_source": dict(sorted(self.by_source.items())),
                **({"decoded_from": dict(sorted(self.decoded_from.items()))} if self.decoded_from else {}),
            },
            "licenses": dict(sorted(self.licenses.items(), key=lambda kv: (-kv[1], kv[0]))),
            "chars": self.chars.stats(),
            "shards": len(self.shards),
        }


def _row(doc: Document) -> dict:
    return {"id": content_id(doc.text), "source": doc.source, "url": doc.url, "name": doc.name,
            "license": doc.license, "format": doc.format, "text": doc.text, "date": doc.date}


def build_raw(cfg: RawConfig, out_dir: str | Path, progress: bool = True) -> RawReport:
    """Read every source in order and write the usable documents as shards of ``cfg.shard_size``."""
    report = RawReport()
    writer = ShardWriter(out_dir, RAW_SCHEMA, cfg.shard_size, row_group_size=RAW_ROW_GROUP)
    docs = iter_documents(cfg.sources, cfg.max_document_chars)
    for doc in tqdm(docs, desc="raw", unit="doc", disable=not progress, mininterval=1.0):
        report.documents_read += 1
        if doc.skip:
            report.skipped[doc.skip] += 1
            continue
        writer.add(_row(doc))
        report.by_source[doc.source] += 1
        report.licenses[doc.license or "unstated"] += 1
        if doc.encoding != "utf-8":
            report.decoded_from[doc.encoding] += 1
        report.chars.add(len(doc.text))
    report.shards = [p.name for p in writer.close()]
    return report


def iter_raw(raw_dir: str | Path) -> Iterator[Document]:
    """The documents of data/raw in their stored order, one shard in memory at a time."""
    if not shard_files(raw_dir):
        raise FileNotFoundError(f"{raw_dir} holds no raw documents: run `dvc repro raw` (see raw.sources)")
    for table in read_shards(raw_dir):
        for row in table.to_pylist():
            yield Document(row["source"], row["url"], row["text"], row["format"], name=row["name"],
                           license=row["license"], date=row.get("date"))


def _maybe_gzip(fh, compress: bool):
    # no file name and mtime 0 in the gzip header: the same documents always give the same bytes
    return gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) if compress else contextlib.nullcontext(fh)


def snapshot_packages(out: str | Path, order_seed: int = 0, max_documents: int | None = None,
                      license_pattern: str | None = PERMISSIVE, max_chars: int = 200_000) -> dict:
    """Write the installed distributions' project pages to ``out`` (.jsonl, or .jsonl.gz) as rows a
    ``files`` source reads with their provenance; only licences matching ``license_pattern`` (None:
    all). Returns counts: written, and skipped by reason."""
    out = Path(out)
    if not out.name.endswith((".jsonl", ".jsonl.gz")):
        raise ValueError(f"{out}: the snapshot is written as .jsonl or .jsonl.gz")
    allowed = re.compile(license_pattern) if license_pattern else None
    counts: Counter = Counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        with open(tmp, "wb") as raw, _maybe_gzip(raw, out.suffix == ".gz") as fh:
            for doc in iter_python_packages(order_seed, max_chars):
                if max_documents is not None and counts["written"] >= max_documents:
                    break
                if doc.skip:
                    counts[doc.skip] += 1
                elif allowed is not None and not allowed.search(doc.license or ""):
                    counts["license_not_allowed"] += 1
                else:
                    row = {"text": doc.text, "url": doc.url, "source": doc.source, "name": doc.name,
                           "license": doc.license, "format": doc.format}
                    fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
                    counts["written"] += 1
    return dict(counts)

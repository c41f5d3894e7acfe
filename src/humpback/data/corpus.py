"""Build the unlabelled corpus: raw documents (data/raw) -> segments -> filters -> dedup -> Parquet shards.

Everything streams: one document is in memory at a time, shards are flushed as they fill, and the
dedup index holds hashes of kept segments only. The report's counts add up: every segment that was
looked at is either kept or dropped for exactly one reason, and likewise every document.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from humpback.core.shards import SEGMENT_SCHEMA, ShardWriter
from humpback.data.config import CorpusConfig
from humpback.data.dedup import Deduplicator, content_id
from humpback.data.filters import segment_reason
from humpback.data.raw import iter_raw
from humpback.data.segment import segment

log = logging.getLogger(__name__)


@dataclass
class CorpusReport:
    documents_read: int = 0
    documents_skipped: Counter = field(default_factory=Counter)
    segments_input: int = 0
    segments_kept: int = 0
    segments_dropped: Counter = field(default_factory=Counter)
    kept_chars: list[int] = field(default_factory=list, repr=False)
    shards: list[str] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)  # provenance of each segmented document, with its kept count
    capped: bool = False

    def metrics(self) -> dict:
        from humpback.core.stats import length_stats

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
            "kept_chars": length_stats(self.kept_chars),
            "shards": len(self.shards),
            "stopped_at_max_segments": self.capped,
        }


def build_corpus(cfg: CorpusConfig, raw_dir: str | Path, out_dir: str | Path, progress: bool = True) -> CorpusReport:
    report = CorpusReport()
    dedup = Deduplicator(cfg.dedup)
    writer = ShardWriter(out_dir, SEGMENT_SCHEMA, cfg.shard_size)
    docs = iter_raw(raw_dir)
    bar = tqdm(docs, desc="corpus", unit="doc", disable=not progress, mininterval=1.0)
    for doc in bar:
        report.documents_read += 1
        try:
            segments = segment(doc.text, doc.format, cfg.html_main_content)
        except Exception as exc:  # a parser choking on one page must not end the stage
            log.warning("skipping %s: cannot segment as %s (%s)", doc.url, doc.format, exc)
            report.documents_skipped["unparseable"] += 1
            continue
        if not segments:
            report.documents_skipped["no_segments"] += 1
            continue
        kept_here = 0
        for seg in segments:
            if cfg.max_segments is not None and report.segments_kept >= cfg.max_segments:
                report.capped = True
                break
            report.segments_input += 1
            if cfg.max_segments_per_document is not None and kept_here >= cfg.max_segments_per_document:
                reason = "document_cap"
            else:
                reason = segment_reason(seg.header, seg.text, cfg) or dedup.reason(seg.text)
            if reason:
                report.segments_dropped[reason] += 1
                continue
            writer.add(
                {
                    "id": content_id(seg.text),
                    "text": seg.text,
                    "source": doc.source,
                    "url": doc.url,
                    "header": seg.header,
                    "n_chars": len(seg.text),
                }
            )
            kept_here += 1
            report.segments_kept += 1
            report.kept_chars.append(len(seg.text))
        report.documents.append({"url": doc.url, "name": doc.name, "license": doc.license, "segments_kept": kept_here})
        bar.set_postfix(kept=report.segments_kept, refresh=False)
        if report.capped:
            break
    bar.close()
    report.shards = [p.name for p in writer.close()]
    return report

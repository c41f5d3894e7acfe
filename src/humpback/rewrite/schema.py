"""What rewrite@i writes: the rewritten pairs train@i reads, and the per-pair cache beside them."""

from __future__ import annotations

import pyarrow as pa

from humpback.curate.select import CURATED_SCHEMA

CACHE_FILE = "rewrites.jsonl"
PAIRS_FILE = "pairs.parquet"
# the curated pair, its response rewritten (or kept, with `rewrite.unfaithful: original`), and the measures
REWRITTEN_SCHEMA = pa.schema(
    list(CURATED_SCHEMA)
    + [
        pa.field("original_response", pa.string(), nullable=False),  # the segment, as curated
        pa.field("rewritten", pa.bool_(), nullable=False),  # false: the rewrite failed the check, the original stays
        pa.field("overlap", pa.float32()),
        pa.field("coverage", pa.float32()),
        pa.field("length_ratio", pa.float32()),
    ]
)

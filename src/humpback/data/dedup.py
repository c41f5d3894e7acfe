"""Content ids, and the settings of datatrove's exact and MinHash deduplication as the corpus runs them.

The corpus stage finds duplicates with datatrove's multi-stage dedup on disk (:mod:`humpback.data.corpus`):
signatures per task, then a sorted merge per hash bucket, then clusters, then a filter. Memory stays
flat however many segments there are. This module holds what every step must agree on: the text
that counts as "the same" (case and whitespace folded), the word tokenizer (``\\w+``, as the
repetition filter, :class:`humpback.data.steps.Words`; datatrove's English default needs NLTK's punkt
data from the network), and the hash functions (sha1 from hashlib: datatrove's xxhash path needs xxhash < 4).
"""

from __future__ import annotations

from humpback.core.keys import content_key
from humpback.data.config import DedupConfig


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def content_id(text: str) -> str:
    """Stable id of a text: the first 16 hex digits of the sha256 of its exact UTF-8 bytes."""
    return content_key(text, length=16)


def exact_content(doc) -> str:
    """What exact dedup compares: the normalised text (a module-level function: tasks pickle it)."""
    return normalise(doc.text)


def first_task_first(doc) -> int:
    """Exact dedup keeps the highest priority of equal texts: the earliest task, so the first occurrence."""
    return 65_535 - doc.metadata["task"]


def exact_config():
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig
    from datatrove.utils.hashing import HashConfig

    return ExactDedupConfig(content_getter=exact_content, document_priority=first_task_first,
                            hash_config=HashConfig(precision=64, hash_fc="sha1"))


def minhash_config(cfg: DedupConfig):
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(n_grams=cfg.shingle_words, num_buckets=cfg.buckets, hashes_per_bucket=cfg.hashes_per_bucket,
                         seed=1, hash_config=HashConfig(precision=64, hash_fc="sha1"))

"""Exact and near-duplicate removal over a stream of segments.

Exact: a hash of the case- and whitespace-normalised text. Near: MinHash over word shingles with
datasketch's LSH index, so a query costs about the same however many segments came before.
Memory grows with the number of *kept* segments (16 bytes each for exact, ``num_perm`` 8-byte
hash values each for near), never with their text.
"""

from __future__ import annotations

import re

from humpback.core.keys import content_key
from humpback.data.config import DedupConfig

_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def content_id(text: str) -> str:
    """Stable id of a text: the first 16 hex digits of the sha256 of its exact UTF-8 bytes."""
    return content_key(text, length=16)


class Deduplicator:
    """``reason(text)`` is None for a new segment (and remembers it), else the drop reason."""

    def __init__(self, cfg: DedupConfig):
        self.cfg = cfg
        self._seen: set[bytes] = set()
        self._lsh = None
        self._n = 0
        if cfg.near:
            from datasketch import MinHashLSH

            self._lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)

    def _minhash(self, text: str):
        from datasketch import MinHash

        words = _WORD.findall(text.lower())
        k = self.cfg.shingle_words
        shingles = {" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}
        m = MinHash(num_perm=self.cfg.num_perm, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles])
        return m

    def reason(self, text: str) -> str | None:
        if self.cfg.exact:
            key = content_key(normalise(text), length=32)
            if key in self._seen:
                return "exact_duplicate"
        m = None
        if self._lsh is not None:
            m = self._minhash(text)
            if self._lsh.query(m):
                return "near_duplicate"
        if self.cfg.exact:
            self._seen.add(key)
        if m is not None:
            self._lsh.insert(str(self._n), m)
        self._n += 1
        return None

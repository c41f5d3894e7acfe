"""Keys: the one content key of data, the digests of files and folders, and the seeded order of rows.

Every id, shard name, resume key and seed in the project comes from :func:`content_key` (data) or
:func:`file_digest` / :func:`dir_digest` (bytes on disk, read in chunks), so two keys differ only
in what they cover and how long they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path


def content_key(*parts, length: int = 16) -> str:
    """The sha256 of ``parts`` in hex, cut to ``length`` digits: text as UTF-8, bytes as they are,
    anything else as canonical JSON (sorted keys; values JSON cannot hold as their ``str``). Parts
    are hashed one after another, as if concatenated."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            part = part.encode("utf-8")
        elif not isinstance(part, bytes):
            part = json.dumps(part, sort_keys=True, default=str).encode("utf-8")
        h.update(part)
    return h.hexdigest()[:length]


def _update_from_file(h, path: Path) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex, whole)."""
    h = hashlib.sha256()
    _update_from_file(h, Path(path))
    return h.hexdigest()


def dir_digest(path: str | Path) -> str:
    """A content hash of a file or directory (names and bytes), independent of DVC: part of the keys
    of generated shards and cached verdicts, so a changed model never reuses another model's work."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        _update_from_file(h, f)
    return h.hexdigest()[:16]


def seeded_order(rows: list, seed: int, ident: Callable[[object], str] = lambda r: r["id"]) -> list:
    """``rows`` in an order fixed by ``seed`` and each row's identity alone (not by input order):
    the one way every stage samples (seed pairs, package pages, curated subsets, negatives), so a
    row added or removed never reshuffles the others."""
    return sorted(rows, key=lambda r: content_key(f"{seed}:{ident(r)}", length=64))

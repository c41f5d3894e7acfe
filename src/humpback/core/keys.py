"""Keys: the one content key of data, the digests of files and folders, and the seeded order of rows.

Every id, shard name, resume key and seed in the project comes from :func:`content_key` (data) or
:func:`path_md5` (files and folders on disk: DVC's md5, so where DVC has hashed a path its hash is
reused, never recomputed), so two keys differ only in what they cover and how long they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
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


def path_md5(path: str | Path) -> str:
    """DVC's md5 of a file or folder: the hash ``dvc.lock`` records for it and ``dvc status``
    compares (32 hex digits; a folder's without DVC's ``.dir`` suffix).

    Part of the keys of generated shards, cached verdicts and training checkpoints, so a changed
    model never reuses another model's work. Inside a DVC repository it goes through DVC's own
    state (keyed on inode, mtime and size): a folder DVC has already hashed costs a stat of each
    file, not a read of every byte (a 14 GB checkpoint), and a folder hashed here first is not
    hashed again by DVC. Outside one (a script run on a folder elsewhere, the tests) it computes
    the same md5 from the bytes."""
    from dvc_data.hashfile.build import build

    path = Path(path).absolute()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder to hash")
    odb, ignore = _hash_context(path)  # DVC's cache carries its state: the hashes DVC already knows
    _, _, obj = build(odb, str(path), _local_fs(), "md5", dry_run=True, ignore=ignore)
    return obj.hash_info.value.removesuffix(".dir")


@lru_cache(maxsize=1)
def _local_fs():
    from dvc_objects.fs.local import LocalFileSystem

    return LocalFileSystem()


def _hash_context(path: Path):
    """(object store with DVC's state, dvcignore) of the DVC repository holding ``path``, else a
    throwaway in-memory store (no state) and no ignore rules."""
    for parent in [path, *path.parents]:
        if (parent / ".dvc").is_dir():
            repo = _repo(str(parent))
            return repo.cache.local, repo.dvcignore
    return _memory_odb(), None


@lru_cache(maxsize=4)
def _repo(root: str):
    from dvc.repo import Repo

    return Repo(root)


@lru_cache(maxsize=1)
def _memory_odb():
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.memory import MemoryFileSystem

    return HashFileDB(MemoryFileSystem(global_store=False), "/staging")


def seeded_order(rows: list, seed: int, ident: Callable[[object], str] = lambda r: r["id"]) -> list:
    """``rows`` in an order fixed by ``seed`` and each row's identity alone (not by input order):
    the one way every stage samples (seed pairs, package pages, curated subsets, negatives), so a
    row added or removed never reshuffles the others."""
    return sorted(rows, key=lambda r: content_key(f"{seed}:{ident(r)}", length=64))

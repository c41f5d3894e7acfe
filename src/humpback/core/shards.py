"""Parquet shard I/O: the data contracts between stages, atomic writes, content-named shards.

A shard is ``part-<index:05d>-<digest>.parquet``: the index keeps the stream order, the digest
(over the row ids) names the content, so a later stage can tell a changed shard from an unchanged
one by its name alone. Files are written to a hidden temp name and renamed, so a crash never
leaves a partial shard that looks complete; readers ignore hidden files (DVC also writes a
``.gitignore`` into output folders).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from humpback.core.files import atomic_write
from humpback.core.keys import content_key

RAW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # content hash of text
        pa.field("source", pa.string(), nullable=False),  # files | hub | warc | python_packages (a snapshot's rows)
        pa.field("url", pa.string(), nullable=False),  # page URL, or file path (with #row or :line)
        pa.field("name", pa.string()),  # e.g. "requests==2.32.3" for a package page
        pa.field("license", pa.string()),  # as the source states it
        pa.field("format", pa.string(), nullable=False),  # markdown | rst | html | text
        pa.field("text", pa.string(), nullable=False),
        pa.field("date", pa.string()),  # when it was crawled (a WARC record's WARC-Date), where known
    ]
)

SEGMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # content hash of text
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # the raw document's source
        pa.field("url", pa.string()),  # page URL or file path the segment came from
        pa.field("header", pa.string(), nullable=False),
        pa.field("n_chars", pa.int32(), nullable=False),
    ]
)

SEED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)

COMPRESSION = "zstd"
# data/raw's documents per Parquet row group: a corpus task reads only the row groups of its block, and
# the footers' byte sizes per group let the tasks split the raw bytes evenly without reading them
RAW_ROW_GROUP = 16


def write_table_atomic(table: pa.Table, path: str | Path, row_group_size: int | None = None) -> Path:
    path = Path(path)
    try:
        with atomic_write(path) as tmp:
            pq.write_table(table, tmp, compression=COMPRESSION, row_group_size=row_group_size)
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:  # Arrow's errors name no file: name the shard
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
        raise
    return path


def shard_files(directory: str | Path, pattern: str = "*.parquet") -> list[Path]:
    """The shards of a stage output, in order; hidden and non-Parquet files are not shards.
    ``pattern`` picks some of them (one split of data/seed: ``train.parquet``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory of Parquet shards")
    return sorted(p for p in directory.glob(pattern) if not p.name.startswith((".", "_")))


def read_shards(directory: str | Path, columns: list[str] | None = None, pattern: str = "*.parquet") -> Iterator[pa.Table]:
    for path in shard_files(directory, pattern):
        yield pq.read_table(path, columns=columns)


def read_table(directory: str | Path, columns: list[str] | None = None, pattern: str = "*.parquet") -> pa.Table:
    """The rows of a stage's Parquet output (the shards ``pattern`` matches) as one table."""
    tables = list(read_shards(directory, columns, pattern))
    if not tables:
        raise FileNotFoundError(f"{directory} holds no Parquet shards" + (f" named {pattern}" if pattern != "*.parquet" else ""))
    return pa.concat_tables(tables)


class ShardWriter:
    """Buffers rows and writes a shard every ``shard_size`` rows; ``close()`` writes the rest."""

    def __init__(self, out_dir: str | Path, schema: pa.Schema, shard_size: int, prefix: str = "part",
                 row_group_size: int | None = None):
        self.out_dir = Path(out_dir)
        self.schema = schema
        self.shard_size = shard_size
        self.prefix = prefix
        self.row_group_size = row_group_size  # None: one row group per shard
        self.paths: list[Path] = []
        self.rows_written = 0
        self._buffer: list[dict] = []

    def add(self, row: dict) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        digest = content_key("\n".join(r["id"] for r in self._buffer), length=12)
        path = self.out_dir / f"{self.prefix}-{len(self.paths):05d}-{digest}.parquet"
        self.paths.append(write_table_atomic(table, path, self.row_group_size))
        self.rows_written += len(self._buffer)
        self._buffer = []

    def close(self) -> list[Path]:
        self._flush()
        return self.paths

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()

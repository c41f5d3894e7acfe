"""Files: the one atomic write, and the one reader of row files (.jsonl/.json/.parquet, optionally .gz or .zst)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """The one way the project writes a file: into a hidden temp name beside ``path``
    (``.<name>.tmp-<pid>``, which the stages' disk-full message maps back to ``path``), renamed over
    ``path`` when the block ends without error. Readers never see half a file, a crash leaves no
    file under the real name, and a failed write (a full disk) leaves no temp file behind.
    ``replace=False``: linked into place instead, never over an existing file (a file another
    process finished first wins)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)  # a temp file a killed run of this pid left
    try:
        yield tmp
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as pretty JSON, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(path)


COMPRESSED = (".gz", ".zst")


def inner_suffix(path: Path) -> str:
    """The suffix that says what a file holds, looking through a trailing .gz or .zst
    (``a.jsonl.gz`` -> ``.jsonl``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def open_binary(path: Path):
    """Open a file for reading bytes, decompressing .gz (gzip) and .zst (zstd, with pyarrow's codec:
    no extra package) on the fly. A truncated or corrupt stream raises on read: EOFError or
    gzip.BadGzipFile for gzip, OSError for zstd."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".zst":
        import pyarrow as pa

        return io.BufferedReader(pa.input_stream(str(path), compression="zstd"))
    return open(path, "rb")


def read_records(path: Path, error: type[Exception] = ValueError, what: str = "data",
                 skip_bad_rows: bool = False) -> Iterator[tuple[str, dict | None]]:
    """(location, row) for every row of a .jsonl/.json/.parquet file (optionally .gz or .zst): the
    one reader of row files, for the seed and eval sets (strict) and for corpus files
    (``skip_bad_rows``). The location (``file:line``, ``file#i``) lets callers name the exact row.

    Strict, a line that is not JSON raises ``error`` naming it; with ``skip_bad_rows`` it comes as
    ``(location, None)`` and reading goes on (a crawl has broken lines; a .json file that is no JSON
    comes as one such row, and one object stands for a list of one). A file that cannot be read to its
    end (truncated, corrupt, no permission) raises ``error`` naming it, with the cause chained; a
    missing one FileNotFoundError. Parquet is read a batch at a time."""
    import zlib

    from pyarrow import ArrowException

    try:
        yield from _read_records(Path(path), error, what, skip_bad_rows)
    except (FileNotFoundError, error):
        raise
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ArrowException) as exc:
        raise error(f"{path}: the {what} file cannot be read to its end ({type(exc).__name__}: {exc}); "
                    "replace or remove it") from exc


def _read_records(path: Path, error: type[Exception], what: str, skip: bool) -> Iterator[tuple[str, dict | None]]:
    suffix = inner_suffix(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        i = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield f"{path}#{i}", row
                i += 1
        return
    if suffix not in (".jsonl", ".json"):
        raise error(f"{path}: unsupported {what} file type '{suffix}' (use .jsonl, .json or .parquet)")
    with open_binary(path) as fh:
        if suffix == ".json":
            try:
                data = json.loads(fh.read())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                if skip:
                    yield str(path), None
                    return
                detail = f"{exc.msg}, line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
                raise error(f"{path}: not valid JSON ({detail})") from None
            if not isinstance(data, list):
                if not skip:
                    raise error(f"{path}: a .json {what} file must hold a list of objects")
                data = [data]
            for i, row in enumerate(data):
                yield f"{path}#{i}", row
            return
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                if skip:
                    yield f"{path}:{lineno}", None
                    continue
                if isinstance(exc, UnicodeDecodeError):
                    raise error(f"{path}:{lineno}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                f"save the {what} file as UTF-8") from None
                raise error(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None

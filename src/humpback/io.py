"""Small helpers shared by the stages: atomic JSON writes, content digests, logging set-up, the
seeded order of rows."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as pretty JSON through a temp file, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:  # a full disk leaves no half-written temp file behind
        tmp.unlink(missing_ok=True)
    return path


def dir_digest(path: str | Path) -> str:
    """A content hash of a file or directory (names and bytes), independent of DVC: part of the keys
    of generated shards and cached verdicts, so a changed model never reuses another model's work."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def seeded_order(rows: list, seed: int, ident: Callable[[object], str] = lambda r: r["id"]) -> list:
    """``rows`` in an order fixed by ``seed`` and each row's identity alone (not by input order):
    the one way every stage samples (seed pairs, package pages, curated subsets, negatives), so a
    row added or removed never reshuffles the others."""
    return sorted(rows, key=lambda r: hashlib.sha256(f"{seed}:{ident(r)}".encode()).hexdigest())


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:  # libraries that set their loggers to DEBUG (Ray Data's
        handler.setLevel(level)  # usage probes log tracebacks there) print through ours at our level
    # third-party chatter that says nothing about our data
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def exception_gist(exc: BaseException, sentences: int = 3) -> str:
    """An exception in one line: its type and the first sentences of its message (Ray's run long)."""
    parts = " ".join(str(exc).split()).split(". ")
    short = ". ".join(parts[:sentences]) + ("." if len(parts) > sentences else "")
    return f"{type(exc).__name__}: {short[:400]}"


@contextlib.contextmanager
def tracebacks_as_one_line(*logger_names: str):
    """Within the block, log records that carry an exception reach the terminal as one line (the
    message and the exception's type and first line), not a traceback: for libraries that log a
    failure with its traceback (alpaca_eval's failed request, Ray Data's lost worker) before the
    stage says in one line what is missing. Handlers of the root logger and of ``logger_names``
    that write to a stream; file handlers (Ray's session logs) keep the full traceback."""

    def one_line(record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({exception_gist(record.exc_info[1])})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True

    handlers = [h for name in ("", *logger_names) for h in logging.getLogger(name).handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    for handler in handlers:
        handler.addFilter(one_line)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(one_line)


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


def flatten(obj, prefix: str = "") -> dict[str, object]:
    """Nested mappings as dotted keys: {"a": {"b": 1}} -> {"a.b": 1} (metrics printing, MLflow params)."""
    if isinstance(obj, dict):
        return {key: value for k, v in obj.items() for key, value in flatten(v, f"{prefix}.{k}" if prefix else str(k)).items()}
    return {prefix: obj}


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

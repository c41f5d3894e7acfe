"""Readers that stream raw documents from the sources of the raw corpus (stage `raw`).

Each reader yields :class:`Document` one at a time (no whole-corpus lists). A document that cannot
be used (empty, undecodable, too large, a row without text) is still yielded, with ``skip`` set to
the reason, so the corpus stage counts it and names the file in a warning instead of crashing.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from humpback.core.files import inner_suffix, open_binary, read_records
from humpback.core.keys import seeded_order
from humpback.data.config import FilesSource, HubSource, WarcSource
from humpback.data.document import Document, decode_text
from humpback.data.segment import format_for_content_type, format_for_suffix
from humpback.data.warc import iter_warc

log = logging.getLogger(__name__)

ROW_SUFFIXES = (".jsonl", ".json", ".parquet")


def _skipped(source: str, url: str, reason: str, detail: str = "") -> Document:
    log.warning("skipping %s: %s%s", url, reason.replace("_", " "), f" ({detail})" if detail else "")
    return Document(source=source, url=url, text=None, format="text", skip=reason)


# ------------------------------------------------------------------------------ python packages
def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def package_license(meta) -> str | None:
    """The licence a distribution declares: its SPDX expression, else its licence classifiers, else
    a one-line License field (some packages put the whole licence text there)."""
    if meta.get("License-Expression"):
        return meta["License-Expression"].strip()
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    classifiers = [c for c in classifiers if c != "OSI Approved"]
    if classifiers:
        return " OR ".join(classifiers)
    field = (meta.get("License") or "").strip()
    return field if field and "\n" not in field and len(field) < 100 and field != "UNKNOWN" else None


def iter_python_packages(order_seed: int, max_chars: int) -> Iterator[Document]:
    """Long descriptions of the installed distributions, one document each (`humpback snapshot packages`).

    A live source: what it yields depends on what is installed, so no stage reads it; the snapshot
    command writes it to a file once. Ordered by a seeded hash of the name rather than alphabetically,
    so a capped demo draws from many kinds of project.
    """
    dists = {}
    for dist in md.distributions():
        name = dist.metadata.get("Name")
        if name and _canonical(name) not in dists:
            dists[_canonical(name)] = dist
    order = seeded_order(list(dists), order_seed, ident=str)
    for key in order:
        meta = dists[key].metadata
        name, version = meta.get("Name"), meta.get("Version")
        url = f"https://pypi.org/project/{name}/{version}/"
        body = meta.get_payload() if hasattr(meta, "get_payload") else None
        text = body or meta.get("Description") or ""
        common = {"name": f"{name}=={version}", "license": package_license(meta)}
        if not text.strip() or text.strip() == "UNKNOWN":
            yield Document("python_packages", url, None, "text", skip="empty", **common)
            continue
        if len(text) > max_chars:
            yield Document("python_packages", url, None, "text", skip="too_large", **common)
            continue
        fmt = format_for_content_type(meta.get("Description-Content-Type"))
        yield Document("python_packages", url, text, fmt, **common)


# ------------------------------------------------------------------------------------ local files
def _iter_files(root: Path) -> Iterator[Path]:
    """Every entry under ``root`` that is not a directory, in name order, hidden ones left out. What is
    not a regular file (a dangling link, a symlink loop, a socket) is yielded too, for the caller to
    count; directory symlinks are not followed, so a link cycle cannot make the walk endless."""
    if not root.is_dir():
        yield root
        return
    for path in sorted(root.rglob("*")):  # rglob does not descend into directory links
        if not path.is_dir() and not any(p.startswith(".") for p in path.relative_to(root).parts):
            yield path


def _broken_file_errors() -> tuple[type[BaseException], ...]:
    """What reading a broken file raises: truncated or corrupt gzip (EOFError, zlib.error,
    BadGzipFile), corrupt Parquet (ArrowException), no permission or a vanished file (OSError)."""
    import zlib

    import pyarrow

    return (OSError, EOFError, zlib.error, pyarrow.ArrowException)


FORMATS = ("markdown", "rst", "html", "text")


def _row_document(row: dict, source: str, where: str, text_column: str, url_column: str | None, fmt: str) -> Document:
    """A row as a document; its optional ``source``, ``name``, ``license`` and ``format`` columns are
    provenance (a snapshot written by `humpback snapshot` carries them) and are kept."""
    if not isinstance(row, dict):
        return Document(source, where, None, "text", skip="missing_text")
    text = row.get(text_column)
    url = str(row.get(url_column) or where) if url_column else where
    if not isinstance(text, str):
        return Document(source, where, None, "text", skip="missing_text")
    if not text.strip():
        return Document(source, url, None, "text", skip="empty")
    fmt = row["format"] if row.get("format") in FORMATS else fmt
    name, license_ = row.get("name"), row.get("license")
    return Document(str(row.get("source") or source), url, text, fmt,
                    name=name if isinstance(name, str) else None,
                    license=license_ if isinstance(license_, str) else None)


class _BrokenRowFile(Exception):
    """A row file that cannot be read to its end (the cause is chained)."""


def _iter_rows(path: Path, src: FilesSource, max_chars: int) -> Iterator[Document]:
    """Rows of a .jsonl / .json (a list of objects) / .parquet file, each row one document."""
    fmt = "markdown" if src.format == "auto" else src.format
    missing = 0
    if inner_suffix(path) == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        if src.text_column not in names:
            log.warning("skipping %s: no column '%s' (columns: %s)", path, src.text_column, names)
            yield Document("files", str(path), None, "text", skip="missing_text")
            return
    try:
        for where, row in read_records(path, _BrokenRowFile, "corpus", skip_bad_rows=True):
            if row is None:
                yield _skipped("files", where, "bad_row", "not a JSON object")
                continue
            doc = _row_document(row, "files", where, src.text_column, src.url_column, fmt)
            missing += doc.skip == "missing_text"
            if doc.skip is None and len(doc.text) > max_chars:
                doc = _skipped("files", where, "too_large", f"more than {max_chars} characters")
            yield doc
    except _BrokenRowFile as exc:
        raise exc.__cause__ from None  # iter_files counts the file by what broke it
    finally:
        if missing:
            log.warning("%s: %d rows without a string '%s' column were skipped", path, missing, src.text_column)


def iter_files(src: FilesSource, max_chars: int) -> Iterator[Document]:
    root = Path(src.path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"corpus source path '{src.path}' does not exist")
    count = 0
    broken = _broken_file_errors()
    for path in _iter_files(root):
        if src.max_documents is not None and count >= src.max_documents:
            return
        if not path.is_file():
            yield _skipped("files", str(path), "not_a_file", "a dangling link, a symlink loop or a special file")
            continue
        suffix = inner_suffix(path)
        try:
            if suffix in ROW_SUFFIXES:
                # rows read before a file turns out broken are kept; the rest counts as one skip
                for doc in _iter_rows(path, src, max_chars):
                    if doc.skip is None:
                        count += 1
                    yield doc
                continue
            fmt = format_for_suffix(suffix) if src.format == "auto" else src.format
            if fmt is None:
                yield _skipped("files", str(path), "unsupported_file", f"suffix '{suffix or path.name}'")
                continue
            # Read at most a little more than the limit: a 50 MB one-line file costs 4*max_chars bytes.
            with open_binary(path) as fh:
                data = fh.read(4 * max_chars + 4)
        except broken as exc:
            reason = "unreadable" if isinstance(exc, PermissionError) else "corrupt"
            yield _skipped("files", str(path), reason, f"{type(exc).__name__}: {exc}")
            continue
        count += 1
        if not data.strip():
            yield _skipped("files", str(path), "empty")
            continue
        if len(data) > 4 * max_chars:  # more bytes than any encoding needs for max_chars characters
            yield _skipped("files", str(path), "too_large", f"more than {max_chars} characters")
            continue
        text, encoding = decode_text(data)
        if text is None:
            yield _skipped("files", str(path), "undecodable", "neither UTF-8 nor a detectable encoding")
            continue
        if len(text) > max_chars:
            yield _skipped("files", str(path), "too_large", f"more than {max_chars} characters")
            continue
        yield Document("files", str(path), text, fmt, encoding=encoding)


# -------------------------------------------------------------------------------------------- hub
def iter_hub(src: HubSource, max_chars: int) -> Iterator[Document]:
    """Rows of a hub dataset, streamed; ``dataset`` may also be a builder such as ``json``."""
    from datasets import load_dataset

    if src.revision is None:
        log.warning("hub source %s has no revision: this snapshot cannot be taken again identically "
                    "(pin raw.sources[].revision to a commit of the dataset)", src.dataset)
    ds = load_dataset(src.dataset, src.config, split=src.split, streaming=True, data_files=src.data_files,
                      revision=src.revision)
    count = 0
    for i, row in enumerate(ds):
        if src.max_documents is not None and count >= src.max_documents:
            return
        doc = _row_document(row, "hub", f"{src.dataset}#{i}", src.text_column, src.url_column, src.format)
        if doc.skip is None:
            count += 1
            if len(doc.text) > max_chars:
                doc = Document("hub", doc.url, None, "text", skip="too_large")
        yield doc


def iter_documents(sources: Iterable, max_chars: int) -> Iterator[Document]:
    for src in sources:
        if isinstance(src, FilesSource):
            yield from iter_files(src, max_chars)
        elif isinstance(src, HubSource):
            yield from iter_hub(src, max_chars)
        elif isinstance(src, WarcSource):
            yield from iter_warc(src, max_chars)
        else:  # pragma: no cover - config validation makes this unreachable
            raise TypeError(f"unknown corpus source {src!r}")

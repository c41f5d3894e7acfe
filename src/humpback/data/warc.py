"""WARC crawls as a raw source: each HTML response record one document, every other record counted.

Read with warcio (the reference WARC library, the one datatrove's WarcReader uses), which undoes
per-record gzip, chunked transfer and HTTP content encoding. Files come through fsspec, so a local
path and a Common Crawl URL read the same way. A record that breaks the file (a truncated gzip
member, a malformed header) ends that file, counted once as ``broken_record``: a WARC cannot be
resynchronised reliably after one, and what was read before it is kept.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from humpback.data.config import WarcSource
from humpback.data.document import Document, decode_text

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
# why a record is no document (beside the reasons every source shares: too_large, empty, undecodable)
WARC_SKIPS = ("not_response", "not_html", "http_status", "broken_record")


def warc_files(src: WarcSource) -> list:
    """fsspec OpenFiles of a WARC source: its path (a file, a folder's .warc / .warc.gz files in name
    order, a glob, a URL) or the paths its listing names, ``prefix`` prepended, at most ``max_files``."""
    import fsspec

    if src.listing is not None:
        with fsspec.open(src.listing, "rt", compression="infer") as fh:
            paths = [src.prefix + line.strip() for line in fh if line.strip()]
        paths = paths[: src.max_files] if src.max_files else paths
        if not paths:
            raise FileNotFoundError(f"raw.sources: the listing '{src.listing}' names no WARC file")
        return [fsspec.open(p, "rb") for p in paths]
    fs, _, found = fsspec.get_fs_token_paths(src.prefix + src.path)
    if len(found) == 1 and fs.isdir(found[0]):
        found = sorted(p for p in fs.find(found[0]) if p.endswith((".warc", ".warc.gz", ".arc.gz")))
    if not found:
        raise FileNotFoundError(f"raw.sources: no WARC file at '{src.path}'")
    found = sorted(found)[: src.max_files] if src.max_files else sorted(found)
    return [fsspec.core.OpenFile(fs, p) for p in found]


def _decode(body: bytes, content_type: str) -> tuple[str | None, str]:
    """The body as text: in the charset the HTTP header declares where it decodes, else as detected."""
    if m := _CHARSET.search(content_type):
        try:
            return body.decode(m.group(1)), m.group(1).lower()
        except (LookupError, UnicodeDecodeError):
            pass
    return decode_text(body)


def _document(record, src: WarcSource, max_chars: int, where: str) -> Document:
    """One WARC record as a document, or as the reason it is none."""
    headers = record.rec_headers
    url = headers.get_header("WARC-Target-URI") or where
    date = headers.get_header("WARC-Date")

    def skip(reason: str) -> Document:
        return Document("warc", url, None, "html", skip=reason, date=date)

    if record.rec_type != "response" or record.http_headers is None:
        return skip("not_response")  # warcinfo, request, metadata, revisit records
    content_type = record.http_headers.get_header("Content-Type") or ""
    if content_type.split(";")[0].strip().lower() not in HTML_TYPES:
        return skip("not_html")
    if record.http_headers.get_statuscode() != "200":
        return skip("http_status")
    body = record.content_stream().read(src.max_record_bytes + 1)
    if len(body) > src.max_record_bytes:
        return skip("too_large")
    if not body.strip():
        return skip("empty")
    text, encoding = _decode(body, content_type)
    if text is None:
        return skip("undecodable")
    if len(text) > max_chars:
        return skip("too_large")
    return Document("warc", url, text, "html", encoding=encoding, date=date)


def iter_warc(src: WarcSource, max_chars: int) -> Iterator[Document]:
    """Every record of every file of ``src``, in order: HTML responses as documents, the rest skipped by reason."""
    import zlib

    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    kept = 0
    for open_file in warc_files(src):
        where = open_file.path
        with open_file as fh:
            records = ArchiveIterator(fh, arc2warc=True)
            while True:
                if src.max_documents is not None and kept >= src.max_documents:
                    return
                try:
                    record = next(records)
                    doc = _document(record, src, max_chars, where)
                except StopIteration:
                    break
                except (ArchiveLoadFailed, EOFError, OSError, ValueError, zlib.error) as exc:
                    log.warning("%s: a broken record ends the file (%s: %s); the records before it are kept",
                                where, type(exc).__name__, str(exc)[:200])
                    yield Document("warc", where, None, "html", skip="broken_record")
                    break
                kept += doc.skip is None
                yield doc

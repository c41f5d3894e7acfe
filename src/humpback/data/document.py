"""A raw document as every source yields it, and the decoding of bytes whose encoding is not given."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Document:
    source: str
    url: str
    text: str | None
    format: str
    skip: str | None = None  # reason the document cannot be used
    name: str | None = None  # e.g. "requests==2.32.3" for a package page
    license: str | None = None  # as the source states it
    encoding: str = "utf-8"  # what the bytes were decoded from (files: detected where not UTF-8)
    date: str | None = None  # when it was crawled (warc: the record's WARC-Date)


def decode_text(data: bytes) -> tuple[str | None, str]:
    """(text, encoding): UTF-8 where it decodes, else the legacy encoding charset-normalizer finds
    (crawls are full of cp1252, Latin-1, Shift-JIS, ... pages); (None, "") where nothing decodes
    without chaos (binary data). cp1252 wins wherever it decodes with no more chaos than the
    detector's first guess: the web's most common legacy encoding (HTML5 reads every ISO-8859-1
    label as cp1252), and on mostly-ASCII pages the detector's guess among the single-byte code pages
    (cp1250, cp775, ...) is often a coin toss that turns "crème" into "crčme"."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None, ""
    western = next((m for m in matches if m.encoding == "cp1252"), None)
    pick = western if western is not None and western.chaos <= best.chaos else best
    return str(pick), pick.encoding

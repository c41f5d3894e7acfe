"""Split a document into header-led segments, as in the paper (App. E of v3).

A segment is the text under one header, including the sub-sections of lower-level headers, with
the header line kept. Every header yields one segment, so a section and its sub-sections both
appear (the length window usually keeps only one of them). Text before the first header is a
segment with an empty header, which the header filter drops unless headerless text is allowed.

Headers are found by a real parser where one exists: markdown-it-py for Markdown (so ``#`` lines
inside code fences are not headers) and resiliparse for HTML (:mod:`humpback.data.html`: headers
marked in its DOM, landmarks and permalink marks removed). reStructuredText
titles are found by their underline/overline adornment, with levels in order of first use, which
is how docutils assigns them; docutils itself does not report reliable source lines for titles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

FORMATS = ("markdown", "rst", "html", "text")


@dataclass(frozen=True)
class Segment:
    header: str
    text: str
    level: int  # 1..6, 0 for text before the first header


@dataclass(frozen=True)
class _Header:
    line: int  # index of the first source line of the header
    level: int
    title: str


def _sections(lines: list[str], headers: list[_Header]) -> list[Segment]:
    """One segment per header: its lines up to the next header of the same or a higher level."""
    segments = []
    first = headers[0].line if headers else len(lines)
    preamble = "".join(lines[:first]).strip()
    if preamble:
        segments.append(Segment(header="", text=preamble, level=0))
    for i, h in enumerate(headers):
        end = next((n.line for n in headers[i + 1 :] if n.level <= h.level), len(lines))
        text = "".join(lines[h.line : end]).strip()
        segments.append(Segment(header=h.title.strip(), text=text, level=h.level))
    return segments


_md = MarkdownIt("commonmark")


def segment_markdown(text: str) -> list[Segment]:
    lines = text.splitlines(keepends=True)
    tokens = _md.parse(text)
    headers = []
    for i, tok in enumerate(tokens):
        # level 0 only: a heading inside a list or block quote does not open a section
        if tok.type == "heading_open" and tok.level == 0 and tok.map:
            headers.append(_Header(tok.map[0], int(tok.tag[1]), tokens[i + 1].content))
    return _sections(lines, headers)


_RST_ADORNMENT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _adornment(line: str) -> str | None:
    s = line.rstrip()
    if len(s) >= 3 and not line[:1].isspace() and len(set(s)) == 1 and s[0] in _RST_ADORNMENT:
        return s[0]
    return None


def segment_rst(text: str) -> list[Segment]:
    lines = text.splitlines(keepends=True)
    styles: list[tuple[str, bool]] = []  # adornment styles in order of first use = levels
    headers = []
    i, n = 0, len(lines)
    while i < n:
        blank_before = i == 0 or not lines[i - 1].strip()
        over = _adornment(lines[i])
        if (
            over and blank_before and i + 2 < n and lines[i + 1].strip()
            and _adornment(lines[i + 2]) == over
            and len(lines[i].rstrip()) >= len(lines[i + 1].strip())
        ):
            style, title, step = (over, True), lines[i + 1].strip(), 3
        elif (
            blank_before and i + 1 < n and lines[i].strip() and not lines[i][:1].isspace()
            and _adornment(lines[i + 1])
            and len(lines[i + 1].rstrip()) >= len(lines[i].rstrip())
            and not _adornment(lines[i])
        ):
            style, title, step = (_adornment(lines[i + 1]), False), lines[i].strip(), 2
        else:
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        headers.append(_Header(i, min(styles.index(style) + 1, 6), title))
        i += step
    return _sections(lines, headers)


def segment_html(html: str, main_content: bool = False) -> list[Segment]:
    """Header segments of an HTML page, through :func:`humpback.data.html.html_to_lines`."""
    from humpback.data.html import html_to_lines

    lines, headers = html_to_lines(html, main_content)
    return _sections(lines, [_Header(h.line, h.level, h.title) for h in headers])


def segment_text(text: str) -> list[Segment]:
    text = text.strip()
    return [Segment(header="", text=text, level=0)] if text else []


def segment(text: str, fmt: str, html_main_content: bool = False) -> list[Segment]:
    """Segments of ``text`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "markdown":
        return segment_markdown(text)
    if fmt == "rst":
        return segment_rst(text)
    if fmt == "html":
        return segment_html(text, html_main_content)
    if fmt == "text":
        return segment_text(text)
    raise ValueError(f"unknown document format {fmt!r}; expected one of {FORMATS}")


_SUFFIX_FORMATS = {
    ".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".rest": "rst",
    ".html": "html", ".htm": "html", ".xhtml": "html", ".txt": "text", ".text": "text",
}


def format_for_suffix(suffix: str) -> str | None:
    return _SUFFIX_FORMATS.get(suffix.lower())


_CONTENT_TYPES = {"text/markdown": "markdown", "text/x-rst": "rst", "text/plain": "text", "text/html": "html"}


def format_for_content_type(content_type: str | None) -> str:
    """Format of a package long description; PyPI renders a missing type as reStructuredText."""
    if not content_type:
        return "rst"
    return _CONTENT_TYPES.get(re.split(r"\s*;", content_type.strip().lower())[0], "text")

"""HTML to text lines with the page's headers located, for header segmentation (paper App. E).

resiliparse (the extractor DCLM's web corpus was built with; a C++ DOM, about 10x BeautifulSoup's
speed here) writes the text. Before it does, three edits in its DOM: the page's landmarks that are
never content (``nav``, ``aside``, ``footer``, ``form``, the ARIA roles navigation, banner, contentinfo,
complementary, search, and elements whose class or id holds a word such as footer, sidebar, navbar,
menu or breadcrumb) are removed; permalink anchors (Sphinx's ``a.headerlink``, or an
in-page link whose text is one mark such as "¶") are removed, on headers and everywhere else; and each h1-h6 becomes
one marked line, so the header survives extraction as a header and not as a line of text.
``main_content`` adds resiliparse's own boilerplate heuristic, which also drops link lists and
sidebars that no landmark names, but drops short list items with them (benchmarks/html_extraction.py
measures both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARK = "\x00"
HEADER_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# elements that are never the page's content, by HTML5 element and ARIA landmark role
BOILERPLATE_TAGS = {"nav", "aside", "footer", "form", "noscript", "template", "script", "style"}
BOILERPLATE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
# ... and by the words sites name them with: a token of the class or id (split at - and _)
BOILERPLATE_NAMES = {"footer", "sidebar", "navbar", "nav", "navigation", "menu", "breadcrumb", "breadcrumbs",
                     "cookie", "cookies", "masthead", "skiplink"}
PERMALINK_TEXTS = {"¶", "#", "§", "🔗", "link"}
_NAME_SPLIT = re.compile(r"[-_\s]+")
_NAMED_BLOCKS = {"div", "section", "ul", "ol", "table", "header", "p", "span", "dl"}


@dataclass(frozen=True)
class HeaderLine:
    line: int  # index of the header's line in the text lines
    level: int
    title: str


def _dropped(node, tag: str) -> bool:
    """Boilerplate (by element, ARIA role, or a class/id word on a block) or a permalink anchor."""
    if tag == "a":  # Sphinx's a.headerlink, or an in-page link whose text is one mark ("¶", "#", "§")
        cls = node.getattr("class")
        return bool(cls and "headerlink" in cls.split()) or (
            (node.getattr("href") or "").startswith("#") and node.text.strip().lower() in PERMALINK_TEXTS)
    if tag in BOILERPLATE_TAGS:
        return True
    role = node.getattr("role")
    if role and role.lower() in BOILERPLATE_ROLES:
        return True
    if tag not in _NAMED_BLOCKS:
        return False
    names = f"{node.getattr('class') or ''} {node.getattr('id') or ''}".strip()
    return bool(names) and not BOILERPLATE_NAMES.isdisjoint(_NAME_SPLIT.split(names.lower()))


def _mark_dom(tree) -> None:
    """Remove boilerplate and permalinks, mark headers: one walk by sibling links (indexing resiliparse's
    DOMCollection walks from its start each time, quadratic on a page of 17,000 links; this is linear)."""
    body = tree.body
    if body is None:
        return
    dropped, headers = [], []
    node, parents = body.first_element_child, []
    while node is not None:
        tag = node.tag
        child = None
        if _dropped(node, tag):
            dropped.append(node)
        elif tag in HEADER_TAGS:
            headers.append(node)
        else:
            child = node.first_element_child
        if child is not None:
            parents.append(node)
            node = child
            continue
        node = node.next_element_sibling
        while node is None and parents:
            node = parents.pop().next_element_sibling
    for node in dropped:
        node.parent.remove_child(node)
    for header in headers:
        for a in header.query_selector_all("a"):  # a header holds a link or two
            if _dropped(a, "a"):
                a.parent.remove_child(a)
        title = " ".join(header.text.split())
        # a marked header is one line whatever it held; an empty one is dropped
        header.text = f"{_MARK}{header.tag[1]}{_MARK}{title}" if title else ""


def html_to_lines(html: str, main_content: bool = False) -> tuple[list[str], list[HeaderLine]]:
    """Readable lines of an HTML page (Markdown-style ``## Title`` header lines, ``- `` list items,
    blank lines between blocks) and where its headers are."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    _mark_dom(tree)
    text = extract_plain_text(tree, main_content=main_content, preserve_formatting=True, list_bullets=True,
                              alt_texts=False, links=False, form_fields=False, noscript=False)
    lines: list[str] = []
    headers: list[HeaderLine] = []
    in_blank = True
    for raw in text.split("\n"):
        line = " ".join(raw.split())
        if line.startswith("\u2022 "):  # resiliparse's bullet: a Markdown list item
            line = "- " + line[2:]
        if _MARK in line:
            _, level, title = line.split(_MARK, 2)
            title = " ".join(title.split())
            if title:
                headers.append(HeaderLine(len(lines), int(level), title))
                lines.append(f"{'#' * int(level)} {title}\n\n")
                in_blank = True
            continue
        if not line:
            if not in_blank:
                lines.append("\n")
            in_blank = True
            continue
        lines.append(line + "\n")
        in_blank = False
    return lines, headers

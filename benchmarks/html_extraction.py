"""HTML to text for the corpus: the corpus stage's extractor (resiliparse, src/humpback/data/html.py) beside
its BeautifulSoup predecessor, trafilatura and plain resiliparse, on the
same real pages in one run, for quality (headers kept, permalink marks and navigation gone) and
speed (ratios, not absolute seconds: the machine is shared).

    apt-get install python3.11-doc                      # 530 real HTML pages nobody here wrote
    uv pip install -c constraints.txt trafilatura beautifulsoup4
    python benchmarks/html_extraction.py [--pages /usr/share/doc/python3.11/html] [--out FILE]

The corpus stage cuts documents at their headers (the paper's segmentation), so an extractor must
keep each header as a header, drop the permalink marks ("¶") a documentation generator puts into
them, and drop the page's navigation, sidebars and footers. Per extractor:

- ``headers_as_headers``: the share of the pages' content headers found as a Markdown header line of
  the output (``# Title``): what header segmentation can use. Content headers are the h1-h6 that
  carry a permalink (Sphinx's ``a.headerlink``), so the sidebars' own headings ("Table of Contents",
  "This Page") count as navigation, not as headers to keep; titles are compared without the marks
  and Markdown's inline code and emphasis;
- ``headers_as_lines``: the share found as a line of their own (kept, but with no mark of a header);
- ``content_kept``: the share of the main content's blocks (Sphinx's ``div[role=main]``: paragraphs,
  list items, definitions, code; not those that are mostly link text, such as the general index's
  entries; each by its first 60 characters) found in the output: what the extractor must not drop
  while it drops the boilerplate;
- ``list_items_kept``: the same for the main content's list items of 30 characters or more alone
  (resiliparse's main-content heuristic drops many of them);
- ``pilcrows``: "¶" in the output, summed over the pages;
- ``pages_with_navigation``: pages whose output holds the navigation's own phrases (Sphinx's
  "Previous topic", "Next topic", "This Page", "Show Source", "Quick search", "Navigation");
- ``chars``: characters of text kept; ``pages_per_s``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import click

NAV_PHRASES = ("Previous topic", "Next topic", "This Page", "Show Source", "Quick search", "Navigation")
HEADER_LINE = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


_BLOCK_TAGS = ("p", "div", "section", "article", "main", "br", "tr", "pre", "blockquote", "ul", "ol", "table", "dl",
               "dt", "dd", "figure", "figcaption", "hr", "li")
_DROP_TAGS = ("script", "style", "noscript", "template", "nav", "footer", "aside", "form", "svg", "iframe")


def beautifulsoup_walk(html: str) -> str:
    """The corpus stage's extractor before resiliparse: lxml through BeautifulSoup, a header line per
    h1-h6, a line per block, the HTML5 boilerplate elements dropped (kept here as the baseline)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        tag.replace_with(f"\n{'#' * int(tag.name[1])} {' '.join(tag.get_text(' ').split())}\n")
    for tag in soup.find_all(_BLOCK_TAGS):
        if tag.name == "li":
            tag.insert(0, "- ")
        tag.append("\n")
    root = soup.body or soup
    return "\n".join(" ".join(line.split()) for line in root.get_text().split("\n"))


def humpback_landmarks(html: str) -> str:
    from humpback.data.html import html_to_lines

    return "".join(html_to_lines(html)[0])


def humpback_main_content(html: str) -> str:
    from humpback.data.html import html_to_lines

    return "".join(html_to_lines(html, main_content=True)[0])


def trafilatura_markdown(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, output_format="markdown", include_formatting=True, include_tables=True,
                               include_links=False, include_comments=False, favor_recall=True) or ""


def resiliparse_text(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=True, preserve_formatting=True, list_bullets=True)


EXTRACTORS = {"BeautifulSoup + lxml (before)": beautifulsoup_walk, "trafilatura (markdown)": trafilatura_markdown,
              "resiliparse (main content)": resiliparse_text,
              "humpback: resiliparse, landmarks out, headers marked (corpus.html_main_content: false)": humpback_landmarks,
              "humpback: the same + resiliparse's main content (true)": humpback_main_content}


def _norm(text: str) -> str:
    text = text.replace("\\", "")  # Markdown's escapes (trafilatura writes \\_ for _)
    return " ".join(re.sub(r"[¶#`*]", " ", text).split()).lower()


def page_titles(html: str) -> list[str]:
    """The content headers of a page (h1-h6 with a permalink), as a reader sees them."""
    import lxml.html

    tree = lxml.html.fromstring(html)
    titles = [_norm(h.text_content()) for h in tree.iter("h1", "h2", "h3", "h4", "h5", "h6")
              if h.find_class("headerlink")]
    return [t for t in titles if t]


def page_list_items(html: str) -> list[str]:
    """The main content's list items of at least 30 characters, each by its first 60 normalised."""
    import lxml.html

    mains = lxml.html.fromstring(html).xpath('//div[@role="main"]')
    items = [_norm(li.text_content()) for li in (mains[0].iter("li") if mains else [])]
    return [i[:60] for i in items if len(i) >= 30]


def page_content(html: str) -> list[str]:
    """The blocks of a page's main content (Sphinx: ``div[role=main]``): its paragraphs, list items,
    definitions and code that are not mostly link text, each as its first 60 characters,
    normalised: what an extractor must keep."""
    import lxml.html

    tree = lxml.html.fromstring(html)
    mains = tree.xpath('//div[@role="main"]') or tree.xpath("//body")
    blocks = []
    for block in (mains[0].iter("p", "li", "dd", "pre") if mains else []):
        text = block.text_content()
        links = sum(len(a.text_content()) for a in block.iter("a"))
        if len(_norm(text)) >= 20 and links <= len(text) / 2:  # link lists (the index pages) are boilerplate
            blocks.append(_norm(text)[:60])
    return blocks


def score(output: str, titles: list[str], content: list[str], items: list[str]) -> dict:
    flat = _norm(output)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    as_headers = {_norm(m.group(1)) for line in lines if (m := HEADER_LINE.match(line))}
    as_lines = {_norm(line) for line in lines}
    return {"titles": len(titles), "as_headers": sum(t in as_headers for t in titles),
            "as_lines": sum(t in as_lines or t in as_headers for t in titles),
            "blocks": len(content), "blocks_kept": sum(b in flat for b in content),
            "items": len(items), "items_kept": sum(i in flat for i in items),
            "pilcrows": output.count("¶"), "navigation": any(p in output for p in NAV_PHRASES),
            "chars": len(output)}


@click.command(help=__doc__)
@click.option("--pages", "pages_dir", default="/usr/share/doc/python3.11/html", show_default=True,
              type=click.Path(exists=True, file_okay=False))
@click.option("--limit", type=int, default=0, help="Only the first N pages (0: all).")
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(pages_dir, limit, out):
    paths = sorted(Path(pages_dir).rglob("*.html"))
    paths = paths[:limit] if limit else paths
    pages = [p.read_text(encoding="utf-8", errors="replace") for p in paths]
    titles = [page_titles(html) for html in pages]
    content = [page_content(html) for html in pages]
    items = [page_list_items(html) for html in pages]
    results = {}
    for name, extract in EXTRACTORS.items():
        extract(pages[0])  # imports and first-call set-up outside the clock
        start = time.perf_counter()
        outputs = [extract(html) for html in pages]
        seconds = time.perf_counter() - start
        scored = [score(o, t, c, i) for o, t, c, i in zip(outputs, titles, content, items)]
        n_titles = sum(s["titles"] for s in scored) or 1
        results[name] = {
            "headers_as_headers": round(sum(s["as_headers"] for s in scored) / n_titles, 3),
            "headers_as_lines": round(sum(s["as_lines"] for s in scored) / n_titles, 3),
            "content_kept": round(sum(s["blocks_kept"] for s in scored) / (sum(s["blocks"] for s in scored) or 1), 3),
            "list_items_kept": round(sum(s["items_kept"] for s in scored) / (sum(s["items"] for s in scored) or 1), 3),
            "pilcrows": sum(s["pilcrows"] for s in scored),
            "pages_with_navigation": sum(s["navigation"] for s in scored),
            "chars": sum(s["chars"] for s in scored),
            "pages_per_s": round(len(pages) / seconds, 1),
        }
    base = next(iter(results.values()))["pages_per_s"]
    click.echo(f"{len(pages)} pages from {pages_dir}, {sum(len(t) for t in titles)} content headers\n")
    click.echo("| extractor | headers as headers | headers kept as lines | content kept | list items kept | ¶ left "
               "| pages with navigation | chars kept | pages/s | speed |")
    click.echo("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        click.echo(f"| {name} | {r['headers_as_headers']:.0%} | {r['headers_as_lines']:.0%} | {r['content_kept']:.0%} | "
                   f"{r['list_items_kept']:.0%} | {r['pilcrows']} | "
                   f"{r['pages_with_navigation']} | {r['chars']:,} | {r['pages_per_s']} | "
                   f"{r['pages_per_s'] / base:.2f}x |")
    if out:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from _machine import cpu_name

        Path(out).write_text(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "pages": len(pages),
                                         "pages_dir": pages_dir, "extractors": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

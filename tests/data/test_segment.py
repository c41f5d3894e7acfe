from humpback.data.segment import format_for_content_type, segment, segment_html, segment_markdown, segment_rst

MD = """Intro before any header.

# Install

Run the installer.

```bash
# this is a comment in code, not a header
pip install thing
```

## On Linux

Use the package manager.

## On macOS

Use brew.

# Usage

Call it.
"""


def test_markdown_sections_include_subsections_and_keep_header():
    segs = segment_markdown(MD)
    headers = [(s.level, s.header) for s in segs]
    assert headers == [(0, ""), (1, "Install"), (2, "On Linux"), (2, "On macOS"), (1, "Usage")]
    install = segs[1].text
    assert install.startswith("# Install")
    assert "## On Linux" in install and "## On macOS" in install and "# Usage" not in install
    assert "# this is a comment in code" in install  # code fence is not split
    assert segs[2].text == "## On Linux\n\nUse the package manager."


def test_markdown_setext_headers():
    segs = segment_markdown("Title\n=====\n\nbody\n\nPart\n----\n\nmore\n")
    assert [(s.level, s.header) for s in segs] == [(1, "Title"), (2, "Part")]


RST = """=======
Project
=======

Intro.

Install
-------

Text.

Details
~~~~~~~

Deep.

Usage
-----

Use it::

    code
    ----
"""


def test_rst_levels_follow_first_use_of_adornment():
    segs = segment_rst(RST)
    assert [(s.level, s.header) for s in segs] == [(1, "Project"), (2, "Install"), (3, "Details"), (2, "Usage")]
    assert segs[1].text.startswith("Install\n-------") and "Deep." in segs[1].text and "Usage" not in segs[1].text
    assert segs[0].text.startswith("=======\nProject")


HTML = """<html><head><style>p{}</style><script>var x = "<h1>no</h1>";</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<h1>Guide to <em>tea</em></h1><p>Tea is <b>great</b>.</p>
<h2>Green</h2><ul><li>Sencha</li><li>Matcha</li></ul>
<h2>Black</h2><p>Assam<p>Darjeeling
<footer>Copyright</footer></body></html>"""


def test_html_headers_and_text():
    segs = segment_html(HTML)
    assert [(s.level, s.header) for s in segs] == [(1, "Guide to tea"), (2, "Green"), (2, "Black")]
    assert segs[0].text.startswith("# Guide to tea\n\nTea is great.")
    assert "- Sencha" in segs[1].text and "- Matcha" in segs[1].text
    full = segs[0].text
    assert "Home" not in full and "Copyright" not in full and "var x" not in full


def test_html_soup_does_not_crash():
    soup = "<div><h2>Unclosed <p>text <b>bold <h3>inner</div></td></tr>&nbsp;&bogus; <<<>>"
    segs = segment(soup, "html")
    assert any(s.header.startswith("Unclosed") for s in segs)


def test_text_format_is_one_headerless_segment():
    assert [(s.header, s.text) for s in segment("  just text \n", "text")] == [("", "just text")]
    assert segment("   ", "text") == []


def test_content_type_mapping():
    assert format_for_content_type("text/markdown; charset=UTF-8") == "markdown"
    assert format_for_content_type(None) == "rst"  # PyPI renders a missing type as reST
    assert format_for_content_type("text/plain") == "text"

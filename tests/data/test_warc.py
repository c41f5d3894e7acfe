"""WARC crawls as a raw source: a WARC built here from real HTML pages (Python's documentation, with
its navigation and permalink marks) goes through `raw` and `corpus`; every record is a document or
counted under one reason, headers lead the segments, no permalink mark is left."""

import gzip
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from humpback.data.config import CorpusConfig, CorpusRunConfig, RawConfig, WarcSource
from humpback.data.corpus import build_corpus
from humpback.data.raw import build_raw

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "html"
DATE = "2024-08-01T12:00:00Z"


def _response(writer, url: str, body: bytes, content_type: str = "text/html; charset=utf-8", status: str = "200 OK"):
    from warcio.statusandheaders import StatusAndHeaders

    http = StatusAndHeaders(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))],
                            protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                                                  warc_headers_dict={"WARC-Date": DATE}))


def build_warc(path: Path, broken_tail: bool = True) -> dict[str, int]:
    """A gzipped WARC as a crawler writes it: warcinfo, a request and a response per page, plus what a
    crawl also holds (an image, a 404 page, an oversized page) and, last, a truncated record. Returns
    how many records of each kind went in."""
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "humpback tests"}))
        for page in sorted(PAGES.glob("*.html")):
            url = f"https://docs.python.org/3.11/{page.stem}.html"
            writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
            _response(writer, url, page.read_bytes())
        _response(writer, "https://docs.python.org/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png")
        _response(writer, "https://docs.python.org/missing.html", b"<html><h1>Not found</h1></html>", status="404 Not Found")
        _response(writer, "https://docs.python.org/huge.html", b"<html><p>" + b"big " * 30_000 + b"</p></html>")
    if broken_tail:  # a crawl cut off mid-record: half of a gzip member
        member = gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
        with open(path, "ab") as fh:
            fh.write(member[: len(member) // 2])
    n = len(list(PAGES.glob("*.html")))
    return {"documents": n, "not_response": 1 + n, "not_html": 1, "http_status": 1, "too_large": 1,
            "broken_record": int(broken_tail)}


def _raw_cfg(root: Path, **src) -> RawConfig:
    return RawConfig(path=str(root), sources=[WarcSource(type="warc", max_record_bytes=100_000, **src)])


def test_every_warc_record_is_a_document_or_counted_and_the_pages_segment_at_their_headers(tmp_path):
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    expected = build_warc(crawl / "CC-TEST-00000.warc.gz")
    report = build_raw(_raw_cfg(crawl, path=str(crawl)), tmp_path / "raw", progress=False)
    docs = report.metrics()["documents"]
    assert docs["kept"] == expected.pop("documents") == 3
    assert docs["skipped"] == expected
    assert docs["read"] == docs["kept"] + sum(expected.values())  # no record unaccounted for
    rows = pq.read_table(next((tmp_path / "raw").glob("*.parquet"))).to_pylist()
    assert {r["url"] for r in rows} == {f"https://docs.python.org/3.11/{p.stem}.html" for p in PAGES.glob("*.html")}
    assert all(r["source"] == "warc" and r["format"] == "html" and r["date"] == DATE for r in rows)

    corpus = build_corpus(CorpusConfig(max_segments=None, max_segments_per_document=None, max_chars=3000),
                          tmp_path / "raw", tmp_path / "corpus", progress=False,
                          run=CorpusRunConfig(work_dir=str(tmp_path / "work")))
    kept = [r for f in sorted((tmp_path / "corpus").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    headers = {r["header"] for r in kept}
    assert {"keyword — Testing for Python keywords", "colorsys — Conversions between color systems",
            "2.1.1. Argument Passing", "2.1.2. Interactive Mode"} <= headers, headers
    for r in kept:
        assert r["text"].startswith("#") and r["header"] in r["text"].splitlines()[0]
        assert "¶" not in r["text"]
        for boilerplate in ("Previous topic", "Next topic", "Show Source", "Quick search", "© Copyright"):
            assert boilerplate not in r["text"], (boilerplate, r["header"])
    m = corpus.metrics()["segments"]
    assert m["kept"] + sum(m["dropped"].values()) == m["input"]


def test_a_warc_source_reads_globs_and_urls_and_stops_at_max_documents(tmp_path):
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    for i in range(2):
        build_warc(crawl / f"part-{i}.warc.gz", broken_tail=False)
    report = build_raw(_raw_cfg(crawl, path=f"file://{crawl}/part-*.warc.gz", max_documents=4), tmp_path / "raw",
                       progress=False)
    assert report.metrics()["documents"]["kept"] == 4  # three from the first file, one from the second


def test_warc_params_are_checked_where_they_are_written(tmp_path):
    from humpback.core.config import ConfigError
    from humpback.params import parse_config

    with pytest.raises(ConfigError, match=r"sources\[0\].path 'elsewhere/x.warc.gz' is outside raw.path"):
        parse_config({"raw": {"path": "data/crawl", "sources": [{"type": "warc", "path": "elsewhere/x.warc.gz"}]}})
    remote = {"type": "warc", "path": "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-33/x.warc.gz"}
    assert parse_config({"raw": {"path": "data/crawl", "sources": [remote]}}).raw.sources[0].local_paths == []
    with pytest.raises(FileNotFoundError, match="no WARC file at"):
        list(build_raw(_raw_cfg(tmp_path, path=str(tmp_path / "none-*.warc.gz")), tmp_path / "raw", progress=False).shards)


def test_a_listing_names_the_files_as_common_crawls_warc_paths_does(tmp_path):
    crawl = tmp_path / "crawl"
    (crawl / "segments").mkdir(parents=True)
    for i in range(3):
        build_warc(crawl / "segments" / f"part-{i}.warc.gz", broken_tail=False)
    listing = crawl / "warc.paths.gz"
    listing.write_bytes(gzip.compress(b"".join(f"segments/part-{i}.warc.gz\n".encode() for i in range(3))))
    report = build_raw(_raw_cfg(crawl, listing=str(listing), prefix=f"{crawl}/", max_files=2), tmp_path / "raw",
                       progress=False)
    assert report.metrics()["documents"]["kept"] == 6  # two files of three pages
    with pytest.raises(ValueError, match="either path .* or listing"):
        WarcSource(type="warc")

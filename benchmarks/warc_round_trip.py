"""A crawl's round trip through raw and corpus: real HTML pages as files and as a WARC, side by side.

    apt-get install python3.11-doc                      # 530 real HTML pages nobody here wrote
    python benchmarks/warc_round_trip.py [--pages /usr/share/doc/python3.11/html] [--before REV] [--out FILE]

1. Writes every page into a gzipped WARC as a crawler does (a request and a response record per page,
   warcinfo first) with warcio.
2. `raw` reads the pages twice, as a `files` source and as a `warc` source: the documents must be the
   same texts (the round trip), and each record of the WARC a document or a counted skip.
3. `corpus` segments the WARC's documents (no cap, the paper's 600-3,000 characters): input segments
   per second, kept, and permalink marks left. With ``--before REV`` the corpus stage of that git
   revision (its BeautifulSoup extractor) runs on the same data/raw in a fresh interpreter, so the
   two stages' throughput is compared in one run (ratios: the machine is shared).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[1]

CORPUS_RUN = """
import json, sys, time
from humpback.data.config import CorpusConfig
from humpback.data.corpus import build_corpus
cfg = CorpusConfig(max_segments=None, max_segments_per_document=None, max_chars=3000)
start = time.perf_counter()
report = build_corpus(cfg, sys.argv[1], sys.argv[2], progress=False)
seconds = time.perf_counter() - start
m = report.metrics()
import pyarrow.parquet as pq, pathlib
texts = [t for f in sorted(pathlib.Path(sys.argv[2]).glob("*.parquet")) for t in pq.read_table(f)["text"].to_pylist()]
print(json.dumps({"seconds": round(seconds, 2), "input_segments": m["segments"]["input"], "kept": m["segments"]["kept"],
                  "input_segments_per_s": round(m["segments"]["input"] / seconds, 1), "pilcrows": sum(t.count("\\u00b6") for t in texts)}))
"""


def write_warc(pages: list[Path], root: Path, out: Path) -> int:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(out, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        writer.write_record(writer.create_warcinfo_record(out.name, {"software": "humpback benchmark"}))
        for page in pages:
            url = f"https://docs.python.org/3.11/{page.relative_to(root)}"
            body = page.read_bytes()
            writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                               ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
    return 1 + 2 * len(pages)


def _corpus(raw: Path, out: Path, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", CORPUS_RUN, str(raw), str(out)], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@click.command(help=__doc__)
@click.option("--pages", "pages_dir", default="/usr/share/doc/python3.11/html", show_default=True,
              type=click.Path(exists=True, file_okay=False))
@click.option("--before", default=None, help="A git revision whose corpus stage runs beside today's.")
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(pages_dir, before, out):
    import pyarrow.parquet as pq
    from _machine import cpu_name

    from humpback.data.config import FilesSource, RawConfig, WarcSource
    from humpback.data.raw import build_raw

    root = Path(pages_dir)
    pages = sorted(root.rglob("*.html"))
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "pages": len(pages), "pages_dir": pages_dir}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        crawl = tmp / "crawl"
        crawl.mkdir()
        start = time.perf_counter()
        records = write_warc(pages, root, crawl / "docs.warc.gz")
        result["warc"] = {"records": records, "bytes": (crawl / "docs.warc.gz").stat().st_size,
                          "write_seconds": round(time.perf_counter() - start, 2)}
        only_pages = tmp / "pages"  # the same pages as files (the manual's folder also holds its sources, scripts, images)
        for page in pages:
            (only_pages / page.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            (only_pages / page.relative_to(root)).write_bytes(page.read_bytes())
        texts = {}
        for name, src in (("files", FilesSource(type="files", path=str(only_pages))),
                          ("warc", WarcSource(type="warc", path=str(crawl)))):
            cfg = RawConfig(path="/", sources=[src])
            start = time.perf_counter()
            report = build_raw(cfg, tmp / f"raw-{name}", progress=False)
            seconds = time.perf_counter() - start
            docs = report.metrics()["documents"]
            result[f"raw_{name}"] = {"read": docs["read"], "kept": docs["kept"], "skipped": docs["skipped"],
                                     "documents_per_s": round(docs["kept"] / seconds, 1)}
            texts[name] = sorted(t for f in sorted((tmp / f"raw-{name}").glob("*.parquet"))
                                 for t in pq.read_table(f)["text"].to_pylist())
        result["round_trip_same_texts"] = texts["files"] == texts["warc"]
        result["corpus_today"] = _corpus(tmp / "raw-warc", tmp / "corpus-today", ROOT / "src")
        if before:
            old = tmp / "before"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), before], check=True)
            try:
                result["corpus_before"] = {"revision": before, **_corpus(tmp / "raw-warc", tmp / "corpus-before",
                                                                          old / "src")}
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=True)
            result["corpus_speedup"] = round(result["corpus_today"]["input_segments_per_s"]
                                             / result["corpus_before"]["input_segments_per_s"], 2)
    click.echo(json.dumps(result, indent=2))
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

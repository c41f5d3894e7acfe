import gzip
import json
import logging

import pyarrow.parquet as pq
import pytest

from _texts import TEXTS
from humpback.core.config import ConfigError
from humpback.core.shards import RAW_SCHEMA, SEGMENT_SCHEMA, read_table, shard_files
from humpback.data.config import CorpusConfig, CorpusRunConfig, FilesSource, RawConfig
from humpback.data.corpus import build_corpus
from humpback.data.raw import build_raw, iter_raw, snapshot_packages
from humpback.params import parse_config


def _corpus_dir(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    t = TEXTS
    (d / "guide.md").write_text(f"# Guides\n\nShort.\n\n## Brewing\n\n{t['tea']}\n\n## Chains\n\n{t['bikes']}\n")
    (d / "copy.md").write_text(f"# Copy\n\n## Brewing\n\n{t['tea']}\n")  # "Brewing" again: exact duplicate
    (d / "page.html").write_text(f"<html><body><h2>Bread</h2><p>{t['sourdough']}</p></body></html>")
    (d / "empty.txt").write_text("")
    (d / "binary.md").write_bytes(b"# Title\n\n\xff\xfe\x00bad bytes")
    (d / "huge.txt").write_text("x" * 60_000)  # one enormous line
    (d / "notes.rst.gz").write_bytes(gzip.compress(f"Stars\n=====\n\n{t['astronomy']}\n".encode()))
    (d / "image.png").write_bytes(b"\x89PNG")
    compost = {"text": f"# Compost\n\n{t['gardening']}", "url": "https://x/compost"}
    rows = [compost, {"body": "no text column"}, compost]  # the repeated row is an exact duplicate
    (d / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    return d


def _raw_config(d, **kw):
    return RawConfig(path=str(d), sources=[FilesSource(type="files", path=str(d))], **{"max_document_chars": 50_000, **kw})


def _corpus_config(**kw):
    return CorpusConfig(**{"shard_size": 2, "min_chars": 300, **kw})


def _run(tmp_path, **kw):
    return CorpusRunConfig(**{"work_dir": str(tmp_path / "work"), **kw})


def _build(tmp_path, raw_cfg, corpus_cfg=None, name="out"):
    """raw -> corpus as the two stages run them; returns both reports."""
    raw = build_raw(raw_cfg, tmp_path / f"{name}-raw", progress=False)
    corpus = build_corpus(corpus_cfg or _corpus_config(), tmp_path / f"{name}-raw", tmp_path / name, progress=False,
                          run=_run(tmp_path))
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())  # a build that ends well cleans up
    return raw, corpus


def test_build_corpus_counts_add_up_and_bad_input_is_skipped(tmp_path, caplog):
    d = _corpus_dir(tmp_path)
    with caplog.at_level(logging.WARNING):
        raw, report = _build(tmp_path, _raw_config(d))
    docs = raw.metrics()["documents"]
    assert docs["skipped"] == {"bad_row": 1, "empty": 1, "missing_text": 1, "too_large": 1,
                               "undecodable": 1, "unsupported_file": 1}
    assert docs["kept"] + sum(docs["skipped"].values()) == docs["read"]
    m = report.metrics()
    segs = m["segments"]
    assert m["documents"]["read"] == docs["kept"] == 6
    assert segs["kept"] + sum(segs["dropped"].values()) == segs["input"]
    # Exact copies go first: the repeated compost row, and guide.md's "Brewing" (copy.md's "Brewing" is the
    # same text). copy.md sorts first: "Copy" is kept and its own "Brewing" sub-section is a near copy of
    # it. "Guides" holds two sections, so it is different enough to keep.
    assert segs["dropped"] == {"exact_duplicate": 2, "near_duplicate": 1}
    assert segs["kept"] == 6
    for name in ("binary.md", "huge.txt", "empty.txt", "image.png"):
        assert any(name in r.getMessage() for r in caplog.records), name

    table = read_table(tmp_path / "out")
    assert table.schema.equals(SEGMENT_SCHEMA)
    assert len(set(table["id"].to_pylist())) == table.num_rows == 6
    assert [len(t) for t in table["text"].to_pylist()] == table["n_chars"].to_pylist()
    assert "https://x/compost" in table["url"].to_pylist()
    assert sorted(table["header"].to_pylist()) == ["Bread", "Chains", "Compost", "Copy", "Guides", "Stars"]
    assert len(shard_files(tmp_path / "out")) == 3  # 6 rows, 2 per shard


def test_legacy_encodings_are_detected_and_only_binary_stays_undecodable(tmp_path):
    """Crawled pages in cp1252/Latin-1 or Shift-JIS are read as text, counted by encoding; bytes that
    decode under no encoding without chaos are still skipped as undecodable."""
    d = tmp_path / "legacy"
    d.mkdir()
    french = "Une crème brûlée, un café noir et une naïve façade à l'été. " * 8
    japanese = "日本語のテキストです。これは古い符号化のページです。" * 8
    (d / "latin1.md").write_bytes(f"# Desserts\n\n{french}\n".encode("latin-1"))
    (d / "sjis.txt").write_bytes(japanese.encode("shift_jis"))
    (d / "utf8.md").write_text(f"# Desserts\n\n{french}\n", encoding="utf-8")
    (d / "binary.md").write_bytes(b"# Title\n\n\xff\xfe\x00bad bytes" + bytes(range(32)) * 4)
    raw = build_raw(_raw_config(d), tmp_path / "raw", progress=False)
    docs = raw.metrics()["documents"]
    assert docs["skipped"] == {"undecodable": 1} and docs["kept"] == 3
    assert docs["decoded_from"] == {"cp1252": 1, "cp932": 1}
    texts = {r["url"].rsplit("/", 1)[-1]: r["text"] for r in read_table(tmp_path / "raw").to_pylist()}
    assert texts["latin1.md"] == texts["utf8.md"] and french in texts["latin1.md"]
    assert texts["sjis.txt"] == japanese


def test_zstd_files_are_read_and_a_truncated_one_is_counted_as_corrupt(tmp_path, caplog):
    import pyarrow as pa

    d = tmp_path / "zst"
    d.mkdir()
    page = f"# Stars\n\n{TEXTS['astronomy']}\n".encode()
    for name, rows in (("notes.md.zst", page), ("rows.jsonl.zst", json.dumps({"text": page.decode()}).encode())):
        with pa.CompressedOutputStream(str(d / name), "zstd") as out:
            out.write(rows)
    whole = (d / "notes.md.zst").read_bytes()
    (d / "cut.md.zst").write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING):
        raw = build_raw(_raw_config(d), tmp_path / "raw", progress=False)
    docs = raw.metrics()["documents"]
    assert docs["kept"] == 2 and docs["skipped"] == {"corrupt": 1}
    assert any("cut.md.zst" in r.getMessage() for r in caplog.records)
    assert {r["text"] for r in read_table(tmp_path / "raw").to_pylist()} == {page.decode()}


def test_shards_are_deterministic_and_round_trip(tmp_path):
    d = _corpus_dir(tmp_path)
    _build(tmp_path, _raw_config(d), name="a")
    _build(tmp_path, _raw_config(d), name="b")
    for out in ("", "-raw"):
        a, b = shard_files(tmp_path / f"a{out}"), shard_files(tmp_path / f"b{out}")
        assert a and [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
        assert pq.read_table(a[0]).to_pylist() == pq.read_table(b[0]).to_pylist()
        assert not list((tmp_path / f"a{out}").glob(".*tmp*"))  # no temp files left behind
    raw = read_table(tmp_path / "a-raw")
    assert raw.schema.equals(RAW_SCHEMA) and raw.num_rows == 6
    assert "https://x/compost" in raw["url"].to_pylist() and set(raw["source"].to_pylist()) == {"files"}


def test_raw_shards_are_written_in_row_groups_a_corpus_task_can_read_alone(tmp_path):
    """data/raw's row groups are what a corpus task reads (and what splits the bytes between tasks): a
    shard of 20 documents is two groups, 16 and 4, not one of 20."""
    from humpback.core.shards import RAW_ROW_GROUP

    d = tmp_path / "many"
    d.mkdir()
    for i in range(20):
        (d / f"page{i:02d}.md").write_text(f"# Page {i}\n\n{TEXTS['tea']}\n")
    build_raw(_raw_config(d), tmp_path / "raw", progress=False)
    (shard,) = shard_files(tmp_path / "raw")
    meta = pq.ParquetFile(shard).metadata
    assert RAW_ROW_GROUP == 16 and [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [16, 4]


def test_caps_are_counted_and_the_manifest_stops_at_the_last_document_used(tmp_path):
    """max_segments and max_segments_per_document apply after dedup, in the documents' order, whatever the
    tasks: every segment past them is counted under its cap, and the manifest ends where the cap did."""
    d = tmp_path / "many"
    d.mkdir()
    for i in range(6):
        body = "\n\n".join(f"## {topic.title()} {i}\n\n{TEXTS[topic]} Page {i}, part {k}."
                           for k, topic in enumerate(("tea", "bikes", "gardening")))
        (d / f"page{i}.md").write_text(f"# Page {i}\n\n{body}\n")
    raw = build_raw(_raw_config(d), tmp_path / "raw", progress=False)
    assert raw.metrics()["documents"]["kept"] == 6
    runs = {}
    for tasks in (1, 4):
        cfg = _corpus_config(tasks=tasks, max_segments=5, max_segments_per_document=2, dedup={"near": False})
        runs[tasks] = build_corpus(cfg, tmp_path / "raw", tmp_path / f"out{tasks}", progress=False, run=_run(tmp_path))
    for report in runs.values():
        m = report.metrics()
        assert m["segments"]["kept"] == 5 and m["stopped_at_max_segments"]
        assert m["segments"]["kept"] + sum(m["segments"]["dropped"].values()) == m["segments"]["input"]
        assert m["segments"]["dropped"]["document_cap"] == 2 and m["segments"]["dropped"]["max_segments"] > 0
    for tasks in runs:
        manifest = json.loads((tmp_path / f"out{tasks}" / "manifest.json").read_text())
        assert [(e["url"].rsplit("/", 1)[-1], e["segments_kept"]) for e in manifest["documents"]] == [
            ("page0.md", 2), ("page1.md", 2), ("page2.md", 1)]
        assert runs[tasks].documents == 3
    assert [p.read_bytes() for p in shard_files(tmp_path / "out1")] == [p.read_bytes() for p in shard_files(tmp_path / "out4")]


def test_package_snapshot_is_byte_stable_and_keeps_its_provenance(tmp_path):
    """The demo corpus is a snapshot of PyPI project pages: the same packages give the same bytes, and
    name==version, licence and format travel from the snapshot through data/raw into the manifest."""
    snap = tmp_path / "corpus" / "pages.jsonl.gz"
    counts = snapshot_packages(snap, max_documents=12)
    first = snap.read_bytes()
    snapshot_packages(snap, max_documents=12)
    assert snap.read_bytes() == first and counts["written"] == 12
    rows = [json.loads(line) for line in gzip.decompress(first).splitlines()]
    assert all("==" in r["name"] and r["license"] and r["url"].startswith("https://pypi.org/project/") for r in rows)
    raw, report = _build(tmp_path, RawConfig(path=str(tmp_path / "corpus"),
                                             sources=[FilesSource(type="files", path=str(snap))]),
                         _corpus_config(max_segments=5, min_chars=600))
    assert raw.metrics()["documents"]["by_source"] == {"python_packages": 12}
    docs = list(iter_raw(tmp_path / "out-raw"))
    assert [d.name for d in docs] == [r["name"] for r in rows] and [d.license for d in docs] == [r["license"] for r in rows]
    assert report.segments_kept == 5
    documents = json.loads((tmp_path / "out" / "manifest.json").read_text())["documents"]
    assert sum(d["segments_kept"] for d in documents) == 5 and all("==" in d["name"] for d in documents)


def test_snapshot_license_filter(tmp_path):
    counts = snapshot_packages(tmp_path / "none.jsonl", max_documents=5, license_pattern=r"^NO SUCH LICENCE$")
    assert counts.get("written", 0) == 0 and counts["license_not_allowed"] > 0
    with pytest.raises(ValueError, match=r"\.jsonl"):
        snapshot_packages(tmp_path / "x.csv")


def test_raw_config_rejects_live_and_unversioned_sources():
    with pytest.raises(ConfigError, match="humpback snapshot packages"):
        parse_config({"raw": {"sources": [{"type": "python_packages"}]}})
    with pytest.raises(ConfigError, match="outside raw.path 'data/demo/corpus'"):
        parse_config({"raw": {"sources": [{"type": "files", "path": "/elsewhere/crawl"}]}})
    with pytest.raises(ConfigError, match="outside raw.path"):
        parse_config({"raw": {"sources": [{"type": "files", "path": "data/demo/corpus/../seed.jsonl"}]}})
    with pytest.raises(ConfigError, match="corpus.sources is now raw.sources"):
        parse_config({"corpus": {"sources": [{"type": "files", "path": "x"}]}})
    cfg = parse_config({"raw": {"path": ".", "sources": [{"type": "files", "path": "crawl/a.jsonl"}]}})
    assert cfg.raw.sources[0].path == "crawl/a.jsonl"


def test_hub_source_streams_through_datasets(tmp_path):
    """The hub reader is datasets.load_dataset(streaming=True); a local json builder exercises it offline."""
    data = tmp_path / "hub.jsonl"
    data.write_text(json.dumps({"content": "# Kombucha\n\n" + TEXTS["tea"]}) + "\n"
                    + json.dumps({"other": 1}) + "\n")
    cfg = parse_config({"raw": {"sources": [
        {"type": "hub", "dataset": "json", "data_files": [str(data)], "text_column": "content"}]}}).raw
    raw, report = _build(tmp_path, cfg)
    assert report.segments_kept == 1
    assert raw.metrics()["documents"] == {"read": 2, "kept": 1, "skipped": {"missing_text": 1}, "by_source": {"hub": 1}}


def test_missing_source_path_is_a_clear_error(tmp_path):
    cfg = RawConfig(path=str(tmp_path), sources=[FilesSource(type="files", path=str(tmp_path / "nope"))])
    with pytest.raises(FileNotFoundError, match="nope"):
        build_raw(cfg, tmp_path / "out", progress=False)
    (tmp_path / "empty-raw").mkdir()
    with pytest.raises(FileNotFoundError, match="dvc repro raw"):
        build_corpus(CorpusConfig(), tmp_path / "empty-raw", tmp_path / "out", progress=False, run=_run(tmp_path))


def test_row_files_name_the_row_and_bound_the_text(tmp_path):
    """Regression: parquet rows were named by their index within a 1,024-row batch, and rows of a
    jsonl/parquet file skipped the max_document_chars check; a .json list was read line by line."""
    import pyarrow as pa

    d = tmp_path / "rows"
    d.mkdir()
    texts = ["short"] * 1030 + [None, "# Big\n\n" + "y" * 5000]
    pq.write_table(pa.table({"text": texts}), d / "many.parquet")
    (d / "list.json").write_text(json.dumps([{"text": f"# Compost\n\n{TEXTS['gardening']}"}, {"x": 1}], indent=2))
    cfg = _raw_config(d, max_document_chars=1000)
    raw, report = _build(tmp_path, cfg)
    assert raw.skipped == {"missing_text": 2, "too_large": 1}
    assert report.segments_kept == 1
    from humpback.data.sources import iter_files

    skipped = {d.url.rsplit("/", 1)[-1]: d.skip for d in iter_files(cfg.sources[0], cfg.max_document_chars) if d.skip}
    assert skipped == {"list.json#1": "missing_text", "many.parquet#1030": "missing_text",
                       "many.parquet#1031": "too_large"}


def test_broken_files_are_skipped_counted_and_named(tmp_path, caplog):
    """A crawl folder with every kind of broken file beside good ones: the stage goes on, keeps the
    good documents and counts each broken file under one reason, naming it in a warning (regression:
    a truncated .gz ended the stage with click's bare `Aborted!`)."""
    import os

    import pyarrow as pa

    d = tmp_path / "crawl"
    d.mkdir()
    good = f"# Compost\n\n{TEXTS['gardening']}\n"
    (d / "good.md").write_text(good)
    (d / "good.jsonl.gz").write_bytes(gzip.compress((json.dumps({"text": f"# Tea\n\n{TEXTS['tea']}"}) + "\n").encode()))
    (d / "truncated.md.gz").write_bytes(gzip.compress(good.encode() * 3)[:-40])
    (d / "truncated.jsonl.gz").write_bytes(gzip.compress(
        "\n".join(json.dumps({"text": f"# Bread {i}\n\n{TEXTS['sourdough']}"}) for i in range(50)).encode())[:300])
    (d / "not-gzip.txt.gz").write_bytes(b"plain bytes, no gzip header at all")
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": [good]}), buf)
    (d / "corrupt.parquet").write_bytes(buf.getvalue().to_pybytes()[:-20])
    (d / "locked.md").write_text(good)
    (d / "locked.md").chmod(0)
    (d / "dangling.md").symlink_to(d / "nowhere.md")
    (d / "loop.md").symlink_to(d / "loop.md")
    (d / "sub").mkdir()
    (d / "sub" / "up").symlink_to(d, target_is_directory=True)  # a cycle: not walked
    (d / "latin1.md").write_bytes(f"# Desserts\n\n{TEXTS['tea']} Crème brûlée, naïve façade.\n".encode("cp1252"))
    (d / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pa.CompressedOutputStream(str(d / "cut.md.zst"), "zstd") as out:
        out.write(good.encode() * 20)
    (d / "cut.md.zst").write_bytes((d / "cut.md.zst").read_bytes()[:-30])
    try:
        with caplog.at_level(logging.WARNING):
            raw = build_raw(_raw_config(d), tmp_path / "raw", progress=False)
    finally:
        (d / "locked.md").chmod(0o644)
    skipped = raw.metrics()["documents"]["skipped"]
    expected = {"corrupt": 5, "not_a_file": 2, "undecodable": 1}
    if os.geteuid() != 0:  # root reads a file without permissions
        expected["unreadable"] = 1
    assert skipped == expected
    kept = read_table(tmp_path / "raw")["url"].to_pylist()
    assert any(u.endswith("good.md") for u in kept) and any("good.jsonl.gz" in u for u in kept)
    assert any(u.endswith("latin1.md") for u in kept)
    m = raw.metrics()["documents"]
    assert m["kept"] + sum(m["skipped"].values()) == m["read"] and m["decoded_from"] == {"cp1252": 1}
    for name in ("truncated.md.gz", "truncated.jsonl.gz", "not-gzip.txt.gz", "corrupt.parquet", "dangling.md", "loop.md",
                 "binary.md", "cut.md.zst"):
        assert any(name in r.getMessage() for r in caplog.records), name


@pytest.mark.parametrize("entries, capped", [
    ([], False),
    ([({"url": "u0", "name": None, "license": None, "segments_kept": 0}, False)], False),
    ([({"url": f"https://example.org/{i}", "name": f"pkg-é{i}==1.0", "license": 'MIT "X11"',
        "segments_kept": i % 3}, i % 3 > 0) for i in range(7)], False),
    ([({"url": f"https://example.org/{i}", "name": "ß", "license": None, "segments_kept": k}, k > 0)
      for i, k in enumerate((1, 0, 2, 0, 0))], True),
    ([({"url": "u0", "name": "n", "license": None, "segments_kept": 0}, False)] * 3, True),
])
def test_the_streamed_manifest_is_what_write_json_writes(tmp_path, entries, capped):
    """The manifest's documents go to disk as the finish reads them; the file is byte for byte the JSON
    the stage wrote from memory before, cut after the last document used when the cap stopped it."""
    from humpback.core.files import write_json
    from humpback.data.corpus import _DocumentList, write_manifest

    documents = _DocumentList(tmp_path / "documents.json")
    for entry, used in entries:
        documents.add(entry, used)
    if capped:
        documents.cut_after_last_used()
    count = documents.close()
    listed = [e for e, _ in entries]
    if capped:
        used = [i for i, (_, u) in enumerate(entries) if u]
        listed = listed[: used[-1] + 1] if used else []
    write_manifest(tmp_path / "manifest.json", ["part-00000-a.parquet", "part-00001-b.parquet"], documents)
    write_json(tmp_path / "expected.json", {"shards": ["part-00000-a.parquet", "part-00001-b.parquet"], "documents": listed})
    assert count == len(listed)
    assert (tmp_path / "manifest.json").read_bytes() == (tmp_path / "expected.json").read_bytes()

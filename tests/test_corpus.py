import gzip
import itertools
import json
import logging

import pyarrow.parquet as pq
import pytest

from _texts import TEXTS
from humpback.config import CorpusConfig, FilesSource, parse_config
from humpback.data import corpus as corpus_mod
from humpback.data.corpus import build_corpus
from humpback.data.corpus_sources import Document
from humpback.data.shards import SEGMENT_SCHEMA, read_table, shard_files


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


def _files_config(d):
    return CorpusConfig(sources=[FilesSource(type="files", path=str(d))], max_document_chars=50_000, shard_size=2,
                        min_chars=300)


def test_build_corpus_counts_add_up_and_bad_input_is_skipped(tmp_path, caplog):
    d = _corpus_dir(tmp_path)
    cfg = _files_config(d)
    with caplog.at_level(logging.WARNING):
        report = build_corpus(cfg, tmp_path / "out", progress=False)
    m = report.metrics()
    docs, segs = m["documents"], m["segments"]
    assert docs["skipped"] == {"bad_row": 1, "empty": 1, "missing_text": 1, "too_large": 1,
                               "undecodable": 1, "unsupported_file": 1}
    assert docs["used"] + sum(docs["skipped"].values()) == docs["read"]
    assert segs["kept"] + sum(segs["dropped"].values()) == segs["input"]
    # copy.md sorts first: "Copy" is kept and its own "Brewing" sub-section is a near copy of it; so is
    # guide.md's "Brewing". "Guides" holds two sections, so it is different enough to keep.
    assert segs["dropped"] == {"exact_duplicate": 1, "near_duplicate": 2}
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


def test_shards_are_deterministic_and_round_trip(tmp_path):
    d = _corpus_dir(tmp_path)
    cfg = _files_config(d)
    build_corpus(cfg, tmp_path / "a", progress=False)
    build_corpus(cfg, tmp_path / "b", progress=False)
    a, b = shard_files(tmp_path / "a"), shard_files(tmp_path / "b")
    assert [p.name for p in a] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    assert pq.read_table(a[0]).to_pylist() == pq.read_table(b[0]).to_pylist()
    assert not list((tmp_path / "a").glob(".*tmp*"))  # no temp files left behind


def test_stream_stops_at_cap_without_reading_everything(tmp_path, monkeypatch):
    """An endless document stream still ends at max_segments: nothing reads the whole corpus first."""

    def endless(*_args, **_kwargs):
        for i in itertools.count():
            yield Document("files", f"doc{i}", f"# Part {i}\n\n" + TEXTS["tea"] + f" Document number {i} is unique.", "markdown")

    monkeypatch.setattr(corpus_mod, "iter_documents", endless)
    cfg = CorpusConfig(max_segments=3, dedup={"near": False})
    report = build_corpus(cfg, tmp_path / "out", progress=False)
    assert report.segments_kept == 3 and report.capped
    assert report.documents_read == 4  # the fourth document hit the cap


def test_python_packages_source_records_versions(tmp_path):
    cfg = parse_config({"corpus": {"max_segments": 5}}).corpus
    report = build_corpus(cfg, tmp_path / "out", progress=False)
    assert report.segments_kept == 5
    assert all("==" in p["package"] for p in report.packages)
    assert sum(p["segments_kept"] for p in report.packages) == 5


def test_hub_source_streams_through_datasets(tmp_path):
    """The hub reader is datasets.load_dataset(streaming=True); a local json builder exercises it offline."""
    data = tmp_path / "hub.jsonl"
    data.write_text(json.dumps({"content": "# Kombucha\n\n" + TEXTS["tea"]}) + "\n"
                    + json.dumps({"other": 1}) + "\n")
    cfg = parse_config({"corpus": {"sources": [
        {"type": "hub", "dataset": "json", "data_files": [str(data)], "text_column": "content"}],
        "min_chars": 300}}).corpus
    report = build_corpus(cfg, tmp_path / "out", progress=False)
    assert report.segments_kept == 1
    assert report.documents_skipped == {"missing_text": 1}


def test_missing_source_path_is_a_clear_error(tmp_path):
    cfg = CorpusConfig(sources=[FilesSource(type="files", path=str(tmp_path / "nope"))])
    with pytest.raises(FileNotFoundError, match="nope"):
        build_corpus(cfg, tmp_path / "out", progress=False)


def test_row_files_name_the_row_and_bound_the_text(tmp_path):
    """Regression: parquet rows were named by their index within a 1,024-row batch, and rows of a
    jsonl/parquet file skipped the max_document_chars check; a .json list was read line by line."""
    import pyarrow as pa

    d = tmp_path / "rows"
    d.mkdir()
    texts = ["short"] * 1030 + [None, "# Big\n\n" + "y" * 5000]
    pq.write_table(pa.table({"text": texts}), d / "many.parquet")
    (d / "list.json").write_text(json.dumps([{"text": f"# Compost\n\n{TEXTS['gardening']}"}, {"x": 1}], indent=2))
    cfg = CorpusConfig(sources=[FilesSource(type="files", path=str(d))], max_document_chars=1000, min_chars=300)
    report = build_corpus(cfg, tmp_path / "out", progress=False)
    assert report.documents_skipped == {"missing_text": 2, "too_large": 1}
    assert report.segments_kept == 1
    from humpback.data.corpus_sources import iter_files

    skipped = {d.url.rsplit("/", 1)[-1]: d.skip for d in iter_files(cfg.sources[0], cfg.max_document_chars) if d.skip}
    assert skipped == {"list.json#1": "missing_text", "many.parquet#1030": "missing_text",
                       "many.parquet#1031": "too_large"}

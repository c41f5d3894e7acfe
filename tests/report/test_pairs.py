"""The best and the worst curated pairs, as a person reads them."""

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from humpback.cli.main import main
from humpback.curate.select import CURATED_SCHEMA
from humpback.report.pairs import best_and_worst, pairs_markdown, read_curated


def _rows(n):
    return [{"id": f"id{k:02d}", "instruction": f"How do I do task {k}? | piped\nnext line", "response": "word " * 100,
             "score": 5 if k % 2 else 4, "expected_score": 3.0 + k / 10, "url": None} for k in range(n)]


def _curated(root, sets):
    for i, rows in sets.items():
        (root / f"iter{i}").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=CURATED_SCHEMA), root / f"iter{i}" / "curated.parquet")
    return root


def test_best_are_the_highest_expected_scores_and_worst_the_lowest():
    best, worst = best_and_worst(_rows(10), 3)
    assert [r["id"] for r in best] == ["id09", "id08", "id07"]
    assert [r["id"] for r in worst] == ["id02", "id01", "id00"]  # worst last
    best, worst = best_and_worst(_rows(5), 3)  # 2n or fewer: the whole set once, best first
    assert [r["id"] for r in best] == ["id04", "id03", "id02", "id01", "id00"] and worst == []
    rows = [{"id": "b", "score": 4, "expected_score": None}, {"id": "a", "score": 5, "expected_score": None},
            {"id": "c", "score": None, "expected_score": None}]
    best, worst = best_and_worst(rows, 1)  # generate scorer: by the score; unscored last
    assert [r["id"] for r in best] == ["a"] and [r["id"] for r in worst] == ["c"]


def test_markdown_tables_per_iteration_with_the_start_of_each_response(tmp_path):
    curated = read_curated(_curated(tmp_path, {1: _rows(10), 2: []}), [1, 2, 3])
    assert sorted(curated) == [1, 2]  # iteration 3 has no set yet
    text = pairs_markdown(curated, n=2)
    assert "## Iteration 1: 10 pairs kept" in text and "Best 2:" in text and "Worst 2:" in text
    assert "| 5 | 3.90 | How do I do task 9? \\| piped next line | word word" in text  # one line, pipes escaped
    assert "…" in text and ("word " * 40) not in text  # the start of the response only
    assert "## Iteration 2: 0 pairs kept" in text and "The curator kept no pair." in text
    assert "No curated set yet" in pairs_markdown({})


def test_humpback_metrics_ends_with_the_pairs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "augment.json").write_text('{"candidates": 10}')
    _curated(tmp_path / "data" / "curated", {1: _rows(10)})
    out = CliRunner().invoke(main, ["metrics", "--pairs", "2"]).output
    assert "candidates" in out and "## Iteration 1: 10 pairs kept" in out and "Worst 2:" in out
    assert "Iteration" not in CliRunner().invoke(main, ["metrics", "--pairs", "0"]).output
    assert "Iteration" not in CliRunner().invoke(main, ["metrics", "--match", "cand"]).output

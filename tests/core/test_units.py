"""core.units.KeyedLines: the line store of keyed units (evaluate@m's verdicts)."""

import json

from humpback.core.units import KeyedLines


def test_results_survive_a_torn_last_line_and_prune_keeps_only_wanted_keys(tmp_path):
    path = tmp_path / "units.jsonl"
    store = KeyedLines(path)
    store.add("b", {"p_b": 0.25, "raw": "B"})
    store.add("a", {"p_b": 0.75, "raw": "A"})
    store.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"key": "c", "p_b": 0.')  # a crash mid-write
    again = KeyedLines(path)
    assert set(again.entries) == {"a", "b"} and again.entries["a"] == {"key": "a", "p_b": 0.75, "raw": "A"}
    again.add("c", {"p_b": None, "raw": ""})
    again.prune({"a", "c", "gone"})
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [e["key"] for e in lines] == ["a", "c"]  # key order, wanted keys only: a from-scratch run's file
    assert not list(tmp_path.glob(".units.jsonl.tmp-*"))

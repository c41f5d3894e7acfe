import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from humpback.augment.generate import CANDIDATE_SCHEMA
from humpback.core.shards import shard_files, write_table_atomic
from humpback.curate.check import check_metrics, cut_mid_way, negative_pairs
from humpback.curate.config import CurateConfig
from humpback.curate.score import SCORE_SCHEMA, LogitsScorer, digit_token_ids, parse_score, score_candidates
from humpback.curate.select import histogram_rows, select
from humpback.models.config import GenerationConfig
from humpback.models.encoding import common_prefix_length, encode_chats
from humpback.models.engine import EngineSpec
from humpback.prompts import rating_messages, read_template


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is complete and clear.\nScore: 5", (5, None)),
        ("Reasoning...\nscore:4", (4, None)),
        ("**Score:** 3", (3, None)),
        ("Score : 2 out of 5", (2, None)),
        ("SCORE: 1.", (1, None)),
        ("First I thought Score: 2, but on reflection\nScore: 4", (4, None)),  # the last one counts
        ("Score: ４", (4, None)),  # full-width digit
        ("Score: ٣", (3, None)),  # Arabic-Indic digit
        ("Score：5", (5, None)),  # full-width colon
        ("Score: 0", (None, "out_of_range")),
        ("Score: 6", (None, "out_of_range")),
        ("Score: 10", (None, "out_of_range")),
        ("Score: 4.5", (None, "not_an_integer")),
        ("I would rate this a four.", (None, "no_score")),
        ("", (None, "no_score")),
        ("Rating: 5", (None, "no_score")),
    ],
)
def test_parse_score(text, expected):
    assert parse_score(text) == expected


def test_rating_prompt_fills_both_placeholders_once():
    tpl = read_template("rate")
    msg = rating_messages("Say {response} literally.", "Here: {instruction}", tpl)[0]["content"]
    assert "Instruction:\nSay {response} literally." in msg and "Answer:\nHere: {instruction}" in msg
    assert msg.rstrip().endswith("Here: {instruction}") and "Score: <rating>" in msg


def test_logits_scorer_probabilities(tiny_model_dir):
    spec = EngineSpec(tiny_model_dir, GenerationConfig(precision="fp32"))
    scorer = LogitsScorer(spec, batch_size=2)
    reader = scorer.reader
    tpl = read_template("rate")
    convs = [rating_messages(f"Question {i}?", f"Answer {i}." * (i + 1), tpl) for i in range(3)]
    rows = scorer.score(convs, seed=0)
    for row in rows:
        assert sum(row["probs"]) == pytest.approx(1.0, abs=1e-5)
        assert row["score"] == 1 + max(range(5), key=lambda k: row["probs"][k])
        assert row["expected_score"] == pytest.approx(sum((k + 1) * p for k, p in enumerate(row["probs"])))
    # hand check: an unbatched forward pass of the same prompt gives the same distribution
    ids = torch.tensor(encode_chats(reader.tok, convs[2:], 2048, suffix=LogitsScorer.PREFIX))
    with torch.inference_mode():
        logits = reader.model(ids).logits[0, -1]
    digits = digit_token_ids(reader.tok)
    assert reader.tok.convert_ids_to_tokens(digits) == ["1", "2", "3", "4", "5"]
    expected = torch.softmax(logits[digits], dim=-1).tolist()
    assert rows[2]["probs"] == pytest.approx(expected, abs=1e-4)


def _candidates(tmp_path, n=6):
    rows = [{"id": f"c{i}", "text": f"Answer number {i}. " * 5, "source": "files", "url": f"u{i}", "header": "h",
             "n_chars": 100, "instruction": f"Question {i}?", "backward_model": "b", "gen_temperature": 0.7,
             "gen_top_p": 0.9, "gen_max_new_tokens": 8, "gen_seed": 1} for i in range(n)]
    d = tmp_path / "cands"
    write_table_atomic(pa.Table.from_pylist(rows[:4], schema=CANDIDATE_SCHEMA), d / "part-00000-a-k.parquet")
    write_table_atomic(pa.Table.from_pylist(rows[4:], schema=CANDIDATE_SCHEMA), d / "part-00001-b-k.parquet")
    return d


def test_score_candidates_incremental(tmp_path, tiny_model_dir):
    cands = _candidates(tmp_path)
    cfg = CurateConfig(scorer="logits", batch_size=4)
    made = []

    class CountingSpec(EngineSpec):
        def choice_reader(self, *args, **kwargs):
            made.append(super().choice_reader(*args, **kwargs))
            return made[-1]

    spec = CountingSpec(tiny_model_dir, GenerationConfig(precision="fp32"))
    report = score_candidates(cands, tmp_path / "scores", 1, spec, cfg, read_template("rate"), "cur", progress=False)
    assert report.pairs == 6 and sum(report.counts.values()) == 6 and report.shards_generated == 2
    assert report.check["negatives"] == 8 and report.check["candidates_sampled"] == 4
    table = pa.concat_tables(pq.read_table(p) for p in shard_files(tmp_path / "scores"))
    assert table.schema.equals(SCORE_SCHEMA) and set(table["iteration"].to_pylist()) == {1}
    assert all(json.loads(r) for r in table["raw"].to_pylist())
    again = score_candidates(cands, tmp_path / "scores", 1, spec, cfg, read_template("rate"), "cur", progress=False)
    assert again.shards_reused == 2 and len(made) == 1  # nothing rescored, the model not even loaded
    assert again.check_reused and again.check == report.check
    other = score_candidates(cands, tmp_path / "scores", 1, spec, cfg, read_template("rate"), "new-curator",
                             progress=False)
    # a new curator rescores everything, the curator check included
    assert other.shards_generated == 2 and other.files_removed == 3 and not other.check_reused


def test_negative_pairs_are_seeded_and_broken_in_two_ways():
    cands = [{"id": f"c{i}", "instruction": f"Question {i}?", "text": f"Answer {i} " + "word " * (10 + i)}
             for i in range(6)]
    pairs = negative_pairs(cands, 3, seed=7)
    assert pairs == negative_pairs(cands[::-1], 3, seed=7)  # the draw depends on ids and seed, not order
    assert pairs != negative_pairs(cands, 3, seed=8)
    assert [p["kind"] for p in pairs] == ["other_response", "truncated_response"] * 3
    by_id = {c["id"]: c for c in cands}
    for p in pairs:
        own = by_id[p["id"]]
        assert p["instruction"] == own["instruction"]
        if p["kind"] == "other_response":
            assert p["text"] != own["text"] and p["text"] in {c["text"] for c in cands}
        else:
            assert own["text"].startswith(p["text"]) and len(p["text"]) <= len(own["text"]) // 2
    assert negative_pairs(cands[:1], 3, 0) == [] and negative_pairs(cands, 0, 0) == []


@pytest.mark.parametrize("text, expected", [
    ("one two three four", "one two"), ("abcdefgh", "abcd"), ("line one\nline two", "line one"), ("", "")])
def test_cut_mid_way_ends_on_a_word(text, expected):
    assert cut_mid_way(text) == expected


def test_check_metrics_is_the_roc_auc_of_real_against_negative_pairs():
    neg = [{"kind": "other_response", "score": 1}, {"kind": "truncated_response", "score": 4},
           {"kind": "other_response", "score": None}]
    m = check_metrics([5, 4, 3], neg, "score")
    # real > 1 three times; against 4: one win (5), one tie (4), one loss (3) -> (3 + 1.5) / 6
    assert m["auc"] == 0.75 and m["auc_other_response"] == 1.0 and m["auc_truncated_response"] == 0.5
    assert m["negatives"] == 3 and m["unparseable_negatives"] == 1
    assert m["mean_real"] == 4.0 and m["mean_negative"] == 2.5 and m["score_gap"] == 1.5
    assert check_metrics([], neg, "score")["auc"] is None


def test_curator_check_sits_beside_the_shards_and_selection_ignores_it(tmp_path, tiny_model_dir):
    cands = _candidates(tmp_path)
    spec = EngineSpec(tiny_model_dir, GenerationConfig(precision="fp32"))
    cfg = CurateConfig(scorer="logits", batch_size=8, negatives=3, sample_seed=1)
    report = score_candidates(cands, tmp_path / "scores", 1, spec, cfg, read_template("rate"), "cur", progress=False)
    [check] = (tmp_path / "scores").glob("_curator_check-*.parquet")
    rows = pq.read_table(check).to_pylist()
    assert len(rows) == 6 and all(r["expected_score"] is not None for r in rows)
    c = report.check
    assert c["negatives"] == 6 and c["compared"] == "expected_score" and 0 <= c["auc"] <= 1
    assert c["mean_real"] - c["mean_negative"] == pytest.approx(c["score_gap"], abs=1e-3)
    table, m = select(cands, tmp_path / "scores", CurateConfig(threshold=1.0))
    assert m["pairs"] == 6 and table.num_rows == 6  # the negatives are not candidates
    # a broken check file (a full disk, a damaged cache copy) is rated again, not trusted
    check.write_bytes(check.read_bytes()[:-40])
    again = score_candidates(cands, tmp_path / "scores", 1, spec, cfg, read_template("rate"), "cur", progress=False)
    assert not again.check_reused and again.check == c and len(pq.read_table(check).to_pylist()) == 6
    off = score_candidates(cands, tmp_path / "off", 1, spec, CurateConfig(negatives=0), read_template("rate"), "cur",
                           progress=False)
    assert off.check is None and "curator_check" not in off.metrics()
    assert not list((tmp_path / "off").glob("_curator_check-*"))


def _scores(tmp_path, scores):
    rows = [{"id": f"c{i}", "iteration": 1, "curator": "x", "scorer": "generate", "score": s, "expected_score": None,
             "probs": None, "raw": "r", "parse_error": None if s else "no_score"} for i, s in enumerate(scores)]
    write_table_atomic(pa.Table.from_pylist(rows, schema=SCORE_SCHEMA), tmp_path / "scores" / "s.parquet")
    return tmp_path / "scores"


def _on_score(threshold=5, **kw) -> CurateConfig:
    """Selection on the integer score (the paper's rule), not the demo's expected score."""
    return CurateConfig(scorer="generate", use_expected_score=False, threshold=threshold, **kw)


def test_select_counts_threshold_and_cap(tmp_path):
    cands = _candidates(tmp_path)
    scores = _scores(tmp_path, [5, 4, None, 2, 5, 3])
    table, m = select(cands, scores, _on_score(4))
    assert table["id"].to_pylist() == ["c0", "c1", "c4"]
    assert m["scores"] == {"1": 0, "2": 1, "3": 1, "4": 1, "5": 2} and m["unparseable"] == 1
    assert m["kept"] == 3 and m["kept_share"] == 0.5 and m["kept_response_chars"]["count"] == 3
    assert table["response"].to_pylist()[0].startswith("Answer number 0.")
    five, _ = select(cands, scores, _on_score(5))
    assert five["id"].to_pylist() == ["c0", "c4"]
    capped, m = select(cands, scores, _on_score(2, max_selected=2, sample_seed=3))
    assert capped.num_rows == 2 and m["eligible"] == 5
    assert capped["id"].to_pylist() == select(cands, scores, _on_score(2, max_selected=2, sample_seed=3))[0]["id"].to_pylist()
    assert [r["count"] for r in histogram_rows(m)] == [0, 1, 1, 1, 2, 1]


def test_empty_selection_is_not_an_error(tmp_path):
    table, m = select(_candidates(tmp_path), _scores(tmp_path, [1, 2, 3, 1, 2, 3]), _on_score(5))
    assert table.num_rows == 0 and m["kept"] == 0 and m["kept_instruction_chars"]["count"] == 0


def test_expected_score_threshold_needs_logits():
    with pytest.raises(ValueError, match="use_expected_score needs scorer: logits"):
        CurateConfig(scorer="generate", use_expected_score=True, threshold=4.5)
    assert CurateConfig(scorer="logits", use_expected_score=True, threshold=4.5).threshold == 4.5


def test_stale_scores_are_reported(tmp_path):
    cands = _candidates(tmp_path, n=6)
    scores = _scores(tmp_path, [5] * 7)  # c6 has no candidate
    with pytest.raises(ValueError, match="1 scores have no candidate"):
        select(cands, scores, _on_score())


def test_generate_scorer_survives_unparseable_ratings(tiny_model_dir, tmp_path):
    """A random model writes no "Score: n": every pair gets score null with the reason, no crash."""
    cands = _candidates(tmp_path, n=4)
    cfg = CurateConfig(scorer="generate", use_expected_score=False, threshold=5,
                       generation={"max_new_tokens": 4, "batch_size": 4, "precision": "fp32"})
    spec = EngineSpec(tiny_model_dir, cfg.generation)
    report = score_candidates(cands, tmp_path / "scores", 1, spec, cfg, read_template("rate"), "c", progress=False)
    assert report.pairs == 4 and report.unparseable == {"no_score": 4} and not report.counts
    table = pa.concat_tables(pq.read_table(p) for p in shard_files(tmp_path / "scores"))
    assert table["score"].null_count == 4 and set(table["parse_error"].to_pylist()) == {"no_score"}
    assert all(isinstance(r, str) for r in table["raw"].to_pylist())
    _, m = select(cands, tmp_path / "scores", _on_score(1))
    assert m["kept"] == 0 and m["unparseable"] == 4


@pytest.mark.parametrize("seqs, expected", [
    ([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 7]], 2),
    ([[1, 2, 3], [1, 2, 3, 4]], 2),  # the shorter sequence keeps one token of its own
    ([[5, 6], [7, 8]], 0),
    ([[1, 2, 3]], 2),
    ([], 0),
])
def test_common_prefix_length(seqs, expected):
    assert common_prefix_length(seqs) == expected


def test_shared_prompt_prefix_is_computed_once_with_the_same_probabilities(tiny_model_dir):
    """The rating rubric opens every prompt: its cache is computed once and reused by every batch
    (left padding between the prefix and each pair's tokens), with the probabilities of the plain
    computation."""
    reader = EngineSpec(tiny_model_dir, GenerationConfig(precision="fp32")).choice_reader(
        [str(k) for k in range(1, 6)], LogitsScorer.PREFIX, batch_size=3)
    tpl = read_template("rate")
    convs = [rating_messages(f"Question {i}?", "An answer. " * (1 + 3 * i), tpl) for i in range(7)]
    prefixes = []
    make_cache = reader._prefix_cache
    reader._prefix_cache = lambda ids: prefixes.append(len(ids)) or make_cache(ids)
    reused = reader.probabilities(convs)
    assert len(prefixes) == 1 and prefixes[0] > 300  # the rubric and the chat template's start
    reader.reuse_prefix = False
    plain = reader.probabilities(convs)
    assert len(prefixes) == 1
    for a, b in zip(reused, plain):
        assert a == pytest.approx(b, abs=1e-5)

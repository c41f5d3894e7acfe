"""Eval sets, AlpacaEval formats, both-order judging with its verdict cache, and eval metrics."""

import json
from pathlib import Path

import pytest

from conftest import FIXTURES
from humpback.evaluate.answer import answer
from humpback.evaluate.config import EvalSetConfig, EvaluateConfig
from humpback.evaluate.judges.base import Judge, Verdict
from humpback.evaluate.pairwise import judge_outputs
from humpback.evaluate.sets import (
    EvalSetError,
    load_eval_set,
    model_outputs,
    read_difficulty,
    read_outputs,
    reference_outputs,
)
from humpback.evaluate.winrate import eval_metrics
from humpback.models.engine import EngineSpec
from humpback.models.hf import HFEngine
from humpback.prompts.config import PromptsConfig

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = FIXTURES


def test_demo_set_is_large_diverse_and_disjoint_from_the_seed():
    rows = load_eval_set(EvalSetConfig(path=str(ROOT / "data/demo/eval.jsonl"), max_prompts=None))
    assert len(rows) >= 60 and len({r["dataset"] for r in rows}) >= 6
    # the demo evaluates the first 12 (evaluate.set.max_prompts): the file interleaves its kinds
    demo = load_eval_set(EvalSetConfig(path=str(ROOT / "data/demo/eval.jsonl")))
    assert len(demo) == 12 and len({r["dataset"] for r in demo}) >= 6
    seed = {json.loads(line)["instruction"].strip().lower() for line in open(ROOT / "data/demo/seed.jsonl")}
    assert not seed & {r["instruction"].strip().lower() for r in rows}
    assert all(r["reference"] is None for r in rows) and reference_outputs(rows) == []


def test_alpaca_eval_local_copy_keeps_references_and_their_generator():
    rows = load_eval_set(EvalSetConfig(source="alpaca_eval", path=str(FIXTURES / "alpaca_eval_sample.json")))
    assert len(rows) == 5 and rows[0]["dataset"] == "helpful_base"
    refs = reference_outputs(rows)
    assert refs[3] == {"instruction": rows[3]["instruction"], "output": rows[3]["reference"],
                       "generator": "text_davinci_003", "dataset": "oasst"}
    capped = load_eval_set(EvalSetConfig(source="alpaca_eval", path=str(FIXTURES / "alpaca_eval_sample.json"),
                                         max_prompts=2))
    assert [r["index"] for r in capped] == [0, 1]


@pytest.mark.parametrize("lines, message", [
    (['{"prompt": "hi"}'], r"bad.jsonl:1: missing or empty 'instruction'; columns present: \['prompt'\]"),
    (['{"instruction": "a", "output": "x"}', '{"instruction": "b"}'], "1 of 2 prompts have no 'output'"),
    (['{"instruction": "a"}', '{"instruction": "a"}'], r"bad.jsonl:2: the instruction appears twice"),
    (["{not json"], r"bad.jsonl:1: not valid JSON"),
    ([], "no prompts found"),
])
def test_bad_eval_sets_name_the_file_and_row(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(EvalSetError, match=message):
        load_eval_set(EvalSetConfig(path=str(path)))


def test_model_outputs_round_trip_and_alignment(tmp_path):
    rows = load_eval_set(EvalSetConfig(source="alpaca_eval", path=str(FIXTURES / "alpaca_eval_sample.json")))
    outs = model_outputs(rows, [f"answer {i}" for i in range(5)], "m1")
    path = tmp_path / "m1.json"
    path.write_text(json.dumps(outs))
    assert read_outputs(path, rows) == outs
    assert set(outs[0]) == {"instruction", "output", "generator", "dataset"}
    path.write_text(json.dumps(outs[::-1]))
    with pytest.raises(EvalSetError, match="do not match the eval set"):
        read_outputs(path, rows)


def test_answer_uses_the_inference_tag_and_alpaca_eval_format(tiny_model_dir):
    rows = load_eval_set(EvalSetConfig(source="alpaca_eval", path=str(FIXTURES / "alpaca_eval_sample.json"),
                                       max_prompts=3))
    cfg = EvaluateConfig(generation={"max_new_tokens": 4, "precision": "fp32", "batch_size": 2})
    seen = []

    class SeeingEngine(HFEngine):
        def generate(self, convs, *a, **k):
            seen.extend(convs)
            return super().generate(convs, *a, **k)

    class Spec(EngineSpec):
        def generator(self):
            return SeeingEngine(self.model_dir, 2, "fp32")

    spec = Spec(tiny_model_dir, cfg.generation)
    outs = answer(rows, spec, cfg, PromptsConfig(), "m0", progress=False)
    assert [o["generator"] for o in outs] == ["m0"] * 3 and all(isinstance(o["output"], str) for o in outs)
    assert seen[0][-1]["content"].endswith(cfg.inference_tag)
    assert outs == answer(rows, spec, cfg, PromptsConfig(), "m0", progress=False)  # seeded


class LengthJudge(Judge):
    """Prefers the longer answer with p = 0.8, except that it always picks A when ``biased``; can
    crash after ``crash_after`` verdicts (to test that finished verdicts survive)."""

    name = "length"

    def __init__(self, biased=False, crash_after=None):
        self.biased, self.crash_after, self.calls = biased, crash_after, 0

    def judge(self, pairs, on_verdict):
        for i, (_, a, b) in enumerate(pairs):
            if self.crash_after is not None and self.calls >= self.crash_after:
                raise RuntimeError("judge died")
            self.calls += 1
            p_b = 0.0 if self.biased else (0.8 if len(b) > len(a) else 0.2)
            on_verdict(i, Verdict(p_b, f"p_b={p_b}"))


def _pairs():
    rows = [{"index": i, "instruction": f"q{i}", "dataset": "t"} for i in range(4)]
    refs = model_outputs(rows, ["short", "a much longer reference answer", "same", "mid answer"], "m0")
    outs = model_outputs(rows, ["a longer model answer", "tiny", "same", "mid answer!"], "m1")
    return rows, outs, refs


def test_both_orders_cancel_position_bias_and_equal_answers_tie(tmp_path):
    rows, outs, refs = _pairs()
    result = judge_outputs(rows, outs, refs, LengthJudge, {"j": 1}, tmp_path / "c.jsonl", "length", progress=False)
    prefs = [a["preference"] for a in result.annotations]
    assert prefs == pytest.approx([1.8, 1.2, 1.5, 1.8])  # identical answers: a tie, never asked
    assert result.requested == 6 and result.failed == 0
    first = result.annotations[0]
    assert first["output_1"] == "short" and first["output_2"] == "a longer model answer"
    assert first["preference_reference_first"] == pytest.approx(1.8) and first["preference_model_first"] == pytest.approx(1.8)
    # a judge that always says "A": both orders disagree, so every judged pair is a tie
    biased = judge_outputs(rows, outs, refs, lambda: LengthJudge(biased=True), {"j": 2}, tmp_path / "b.jsonl",
                           "biased", progress=False)
    assert [a["preference"] for a in biased.annotations] == [1.5, 1.5, 1.5, 1.5]
    m = eval_metrics(biased.annotations)
    assert m["judge_order_agreement"] == 0 and m["judge_first_position_preference"] == 1.0
    assert "judge_length_agreement" not in m  # every verdict a tie: nothing decided to compare
    # the length judge agrees with a length-only judge on every decided pair of different lengths
    assert eval_metrics(result.annotations)["judge_length_agreement"] == 1.0
    flipped = [{**a, "preference": 3 - a["preference"]} for a in result.annotations]
    assert eval_metrics(flipped)["judge_length_agreement"] == 0.0


def test_a_crashed_judge_loses_no_finished_verdict(tmp_path):
    rows, outs, refs = _pairs()
    cache = tmp_path / "judgements.jsonl"
    with pytest.raises(RuntimeError):
        judge_outputs(rows, outs, refs, lambda: LengthJudge(crash_after=4), {"j": 1}, cache, "length", progress=False)
    assert len(cache.read_text().splitlines()) == 4
    with open(cache, "a") as fh:
        fh.write('{"key": "torn')  # a line cut by the crash
    again = LengthJudge()
    result = judge_outputs(rows, outs, refs, lambda: again, {"j": 1}, cache, "length", progress=False)
    assert again.calls == 2 and result.reused == 4 and result.requested == 2
    assert [a["preference"] for a in result.annotations] == pytest.approx([1.8, 1.2, 1.5, 1.8])
    assert len(cache.read_text().splitlines()) == 6  # compacted: the torn line is gone
    # a new judge identity asks again; the cache keeps only what the current run uses
    judge_outputs(rows, outs, refs, LengthJudge, {"j": "other"}, cache, "length", progress=False)
    assert len(cache.read_text().splitlines()) == 6


def test_eval_metrics_counts_failures_and_matches_win_rate(tmp_path):
    rows, outs, refs = _pairs()
    result = judge_outputs(rows, outs, refs, LengthJudge, {"j": 1}, tmp_path / "c.jsonl", "length", progress=False)
    anns = result.annotations + [{**result.annotations[0], "index": 9, "preference": None}]
    m = eval_metrics(anns, n_splits=2)
    assert m["n_total"] == 4 and m["failed"] == 1
    assert m["win_rate"] == pytest.approx((0.8 + 0.2 + 0.5 + 0.8) / 4 * 100, abs=1e-3)
    assert m["n_wins"] == 2 and m["n_wins_base"] == 1 and m["n_draws"] == 1
    assert m["length_controlled_winrate"] is not None and m["model_output_chars"]["count"] == 5
    json.dumps(m)  # plain JSON: no NaN, no numpy types


def test_read_difficulty_covers_every_prompt_or_names_the_problem(tmp_path):
    rows = [{"index": 0}, {"index": 1}]
    path = tmp_path / "difficulty.csv"
    path.write_text(",instruction_difficulty\n0,0.5\n1,-1.25\n")
    assert read_difficulty(path, rows) == {0: 0.5, 1: -1.25}
    path.write_text(",instruction_difficulty\n0,0.5\n")
    with pytest.raises(EvalSetError, match="no difficulty for 1 prompts"):
        read_difficulty(path, rows)
    path.write_text(",instruction_difficulty\n0,hard\n")
    with pytest.raises(EvalSetError, match="difficulty.csv:2: expected 'index,difficulty'"):
        read_difficulty(path, rows)
    with pytest.raises(EvalSetError, match="cannot read"):
        read_difficulty(tmp_path / "none.csv", rows)


def test_a_missing_eval_set_names_its_file_and_the_stage_that_writes_it(tmp_path):
    from humpback.evaluate.sets import read_prompts

    with pytest.raises(EvalSetError, match=r"set/prompts.json: cannot read the eval set .*dvc repro eval_set"):
        read_prompts(tmp_path / "set")

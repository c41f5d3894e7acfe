"""evaluate.judge.kind: alpaca_eval runs AlpacaEval's own annotator configurations through the
alpaca_eval package against an OpenAI-compatible endpoint (here the local fake server)."""

from __future__ import annotations

import json
import math

import pytest

from _fake_openai import FakeOpenAI
from humpback.core.incomplete import Incomplete
from humpback.evaluate.judges.alpaca_eval import CACHE_NAME, AlpacaEvalError, annotator_config, annotator_names
from humpback.evaluate.judges.config import JudgeConfig
from humpback.evaluate.pairwise import judge_pairs
from humpback.evaluate.winrate import eval_metrics

KEY = "sk-alpaca-SECRET-0b7e"
ROWS = [{"index": i, "instruction": f"Question {i}?", "dataset": "t"} for i in range(4)]
REFS = [{"output": f"ref answer {i}", "generator": "m0"} for i in range(3)] + [{"output": "same", "generator": "m0"}]
OUTS = [{"output": f"model answer number {i}, longer", "generator": "m2"} for i in range(3)] + [
    {"output": "same", "generator": "m2"}]


def _prompt(body) -> str:
    return "\n".join(m["content"] for m in body["messages"])


def model_first(body) -> bool:
    """Whether the prompt shows our model's answer before the reference's (AlpacaEval picks the order)."""
    text = _prompt(body)
    return text.index("model answer number") < text.index("ref answer")


def prefers_the_model_weighted(body):
    """AlpacaEval 2.0's annotator answers with the identifier of the better output: "m" for the first
    shown, "M" for the second; here p = 0.8 for the model's."""
    win, lose = ("m", "M") if model_first(body) else ("M", "m")
    return {"content": win, "top_logprobs": {win: math.log(0.8), lose: math.log(0.2)}}


def prefers_the_model_ranking(body):
    """AlpacaEval 1.0's annotator answers with a ranking of model_1 (shown first) and model_2."""
    first, second = (1, 2) if model_first(body) else (2, 1)
    return {"content": f"[{{'model': 'model_1', 'rank': {first}}}, {{'model': 'model_2', 'rank': {second}}}]"}


def _cfg(url, annotator, model="judge-local"):
    return JudgeConfig(kind="alpaca_eval", alpaca_eval={"annotator": annotator, "model": model},
                       openai={"base_url": url, "api_key_env": "HUMPBACK_ALPACA_TEST", "concurrency": 1,
                               "max_retries": 0})


@pytest.mark.parametrize("annotator, judge, expected", [
    ("weighted_alpaca_eval_gpt4_turbo", prefers_the_model_weighted, 1.8),
    ("alpaca_eval_gpt4", prefers_the_model_ranking, 2.0),
])
def test_alpaca_eval_annotators_judge_through_the_endpoint_and_cache_in_the_project(
        tmp_path, monkeypatch, annotator, judge, expected):
    monkeypatch.setenv("HUMPBACK_ALPACA_TEST", KEY)
    server = FakeOpenAI([judge] * 3, key=KEY)
    try:
        cfg = _cfg(server.url, annotator)
        result = judge_pairs(ROWS, OUTS, REFS, cfg, "unused", None, tmp_path / "judged", progress=False)
        assert [a["preference"] for a in result.annotations] == pytest.approx([expected] * 3 + [1.5])
        assert result.requested == 3 and result.reused == 0 and result.failed == 0
        assert len(server.requests) == 3  # identical answers are a tie without asking
        assert {r["body"]["model"] for r in server.requests} == {"judge-local"}
        assert {r["auth"] for r in server.requests} == {f"Bearer {KEY}"}
        a = result.annotations[0]
        assert (a["output_1"], a["generator_1"], a["output_2"], a["generator_2"]) == (
            "ref answer 0", "m0", "model answer number 0, longer", "m2")
        assert a["annotator"] == "humpback_alpaca_eval" and a["index"] == 0
        assert eval_metrics(result.annotations)["n_wins"] == 3
        cache = tmp_path / "judged" / CACHE_NAME
        assert cache.is_file() and KEY not in cache.read_text()
        assert len(json.loads(cache.read_text())) == 3
        # a rerun asks nothing: every verdict comes from the project's cache
        again = judge_pairs(ROWS, OUTS, REFS, cfg, "unused", None, tmp_path / "judged", progress=False)
        assert len(server.requests) == 3 and again.reused == 3 and again.requested == 0
        assert [x["preference"] for x in again.annotations] == [x["preference"] for x in result.annotations]
    finally:
        server.close()


def test_bad_alpaca_eval_settings_say_what_to_choose():
    names = annotator_names()
    assert {"alpaca_eval_gpt4", "weighted_alpaca_eval_gpt4_turbo"} <= set(names)
    with pytest.raises(AlpacaEvalError, match="not an annotator configuration.*weighted_alpaca_eval_gpt4_turbo"):
        annotator_config(JudgeConfig(kind="alpaca_eval", alpaca_eval={"annotator": "no_such_judge"}))
    with pytest.raises(AlpacaEvalError, match="not an OpenAI-compatible endpoint"):
        annotator_config(JudgeConfig(kind="alpaca_eval", alpaca_eval={"annotator": "claude"}))
    own = annotator_config(JudgeConfig(kind="alpaca_eval", alpaca_eval={"annotator": "alpaca_eval_gpt4"}))
    (single,) = own.values()
    assert single["completions_kwargs"]["model_name"] == "gpt-4"  # the configuration's own model
    assert single["prompt_template"].endswith("alpaca_eval_gpt4/alpaca_eval.txt")


def test_a_garbage_verdict_is_counted_and_asked_again_a_dead_endpoint_is_incomplete_in_one_line(
        tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HUMPBACK_ALPACA_TEST", KEY)
    judge = prefers_the_model_weighted
    server = FakeOpenAI([judge, {"content": "no identifier at all"}, judge, judge], key=KEY)
    try:
        cfg = _cfg(server.url, "weighted_alpaca_eval_gpt4_turbo")
        first = judge_pairs(ROWS, OUTS, REFS, cfg, "unused", None, tmp_path, progress=False)
        assert [a["preference"] for a in first.annotations] == pytest.approx([1.8, None, 1.8, 1.5])
        assert first.failed == 1 and eval_metrics(first.annotations)["failed"] == 1
        again = judge_pairs(ROWS, OUTS, REFS, cfg, "unused", None, tmp_path, progress=False)
        assert len(server.requests) == 4 and again.reused == 2 and again.requested == 1 and again.failed == 0
        assert [a["preference"] for a in again.annotations] == pytest.approx([1.8] * 3 + [1.5])
    finally:
        server.close()
    dead = FakeOpenAI(["500"] * 10, key=KEY)
    try:
        caplog.clear()
        with pytest.raises(Incomplete, match=f"the judge endpoint {dead.url} failed after 0 retries .*0 of 3 "
                                             "verdicts are kept.*`dvc repro` again"):
            judge_pairs(ROWS, OUTS, REFS, _cfg(dead.url, "weighted_alpaca_eval_gpt4_turbo"), "unused", None,
                        tmp_path / "dead", progress=False)
        # alpaca_eval logs the failed request with its traceback: the stage's log gets one line
        assert not [r for r in caplog.records if r.exc_info]
        assert any("InternalServerError" in r.getMessage() for r in caplog.records)
    finally:
        dead.close()

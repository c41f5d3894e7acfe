"""Judges: verdict parsing, the local logits judge, and an OpenAI-compatible judge against a fake
server on loopback that fails in the ways real endpoints do."""


import pytest

from humpback.evaluate.judges.base import parse_verdict
from humpback.evaluate.judges.config import JudgeConfig, OpenAIJudgeConfig
from humpback.evaluate.judges.factory import make_judge
from humpback.evaluate.judges.remote import OpenAIJudge
from humpback.prompts import read_template

TEMPLATE = read_template("judge")
PAIRS = [("Name a colour.", "Blue.", "A colour is blue, like the sky on a clear day."),
         ("Add 2 and 2.", "4", "5"),
         ("Say hi.", "Hello!", "Hi there!")]


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("A", "A"), (" **A**", "A"), ("Answer B.", "B"), ("B is better", "B"), ("(A)", "A"),
    ("Both are fine", None), ("", None), ("AB", None), ("I pick answer: b", None),
])
def test_parse_verdict(text, letter):
    assert parse_verdict(text) == letter


def test_hf_judge_reads_a_distribution_over_a_and_b(tiny_model_dir):
    judge = make_judge(JudgeConfig(model=str(tiny_model_dir), batch_size=2, precision="fp32"), TEMPLATE)
    got = {}
    judge.judge(PAIRS, lambda i, v: got.__setitem__(i, v))
    assert sorted(got) == [0, 1, 2]
    for v in got.values():
        assert 0 < v.p_b < 1 and v.error is None
        a, b = (float(x.split("=")[1]) for x in v.raw.split())
        assert a + b == pytest.approx(1, abs=1e-5)


def _judge(url, monkeypatch, **kw):
    monkeypatch.setenv("HUMPBACK_TEST_KEY", "sk-test")
    o = OpenAIJudgeConfig(base_url=url, model="judge-1", api_key_env="HUMPBACK_TEST_KEY", concurrency=1,
                          timeout_s=kw.pop("timeout_s", 5), max_retries=kw.pop("max_retries", 2), **kw)
    return OpenAIJudge(JudgeConfig(kind="openai", openai=o), TEMPLATE, retry_wait_s=0.01)


def _run(judge, pairs):
    got = {}
    judge.judge(pairs, lambda i, v: got.__setitem__(i, v))
    return [got[i] for i in range(len(pairs))]


def test_openai_judge_reads_letters_and_sends_the_key_from_the_environment(fake_server, monkeypatch):
    server = fake_server(["A", "B", "**B**"])
    verdicts = _run(_judge(server.url, monkeypatch), PAIRS)
    assert [v.p_b for v in verdicts] == [0.0, 1.0, 1.0]
    assert all(r["auth"] == "Bearer sk-test" for r in server.requests)
    body = server.requests[0]["body"]
    assert body["model"] == "judge-1" and body["temperature"] == 0
    assert "Answer A:" in body["messages"][0]["content"] and "Blue." in body["messages"][0]["content"]


def test_openai_judge_weights_by_logprobs(fake_server, monkeypatch):
    server = fake_server(["B"])
    (v,) = _run(_judge(server.url, monkeypatch, logprobs=True), PAIRS[:1])
    assert v.p_b == pytest.approx(0.8 / (0.8 + 0.2), abs=1e-3)
    assert server.requests[0]["body"]["top_logprobs"] == 5


@pytest.fixture
def waits(monkeypatch):
    """The judge's waits between retries, recorded instead of slept."""
    slept = []
    monkeypatch.setattr("humpback.models.endpoint._sleep", slept.append)
    return slept


def test_openai_judge_retries_500_429_timeout_malformed_and_no_verdict(fake_server, monkeypatch, waits):
    server = fake_server(["500", "B", "sleep", "malformed", "A", "429:7", "Both are fine", "B"])
    verdicts = _run(_judge(server.url, monkeypatch, timeout_s=0.5, max_retries=2), PAIRS)
    assert [v.p_b for v in verdicts] == [1.0, 0.0, 1.0]
    assert all(v.error is None for v in verdicts)
    assert len(server.requests) == 8  # every retry is ours: the client itself retries nothing
    assert 7 in waits  # the wait the 429's Retry-After asked for
    others = [w for w in waits if w != 7]
    assert len(others) == 4 and all(0 <= w <= 0.01 * 2 for w in others)  # jittered back-off


def test_a_retry_after_beyond_max_wait_s_waits_max_wait_s(fake_server, monkeypatch, waits):
    server = fake_server(["429:3600", "A"])
    (v,) = _run(_judge(server.url, monkeypatch, max_wait_s=5), PAIRS[:1])
    assert v.p_b == 0.0 and waits == [5]


def test_openai_judge_counts_a_verdict_it_cannot_get_without_raising(fake_server, monkeypatch, waits):
    server = fake_server(["I cannot decide", "no idea", "500", "500", "B"])
    verdicts = _run(_judge(server.url, monkeypatch, max_retries=1), PAIRS[:3])
    assert verdicts[0].p_b is None and "no verdict in the reply 'no idea'" in verdicts[0].error
    assert verdicts[1].p_b is None and "HTTP 500" in verdicts[1].error
    assert verdicts[2].p_b == 1.0
    assert len(server.requests) == 5


def test_a_dead_endpoint_stops_the_judge_after_dead_after_failed_requests(fake_server, monkeypatch, waits):
    server = fake_server(["500"] * 100)
    pairs = PAIRS * 10
    verdicts = _run(_judge(server.url, monkeypatch, max_retries=3, dead_after=5), pairs)
    assert len(server.requests) == 5  # not 30 pairs x 4 attempts
    assert all(v.p_b is None for v in verdicts)
    assert "HTTP 500" in verdicts[0].error
    assert all("not asked: the endpoint is down (5 requests in a row failed" in v.error for v in verdicts[2:])


def test_one_success_resets_the_dead_endpoint_count(fake_server, monkeypatch, waits):
    server = fake_server(["500", "500", "A", "500", "500", "B"])
    verdicts = _run(_judge(server.url, monkeypatch, max_retries=2, dead_after=3), PAIRS[:2])
    assert [v.p_b for v in verdicts] == [0.0, 1.0]


def test_openai_judge_without_a_key_for_openai_says_which_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIJudge(JudgeConfig(kind="openai"), TEMPLATE)

"""rewrite@i: the faithfulness check, and the per-pair resumable rewriting on the hf engine (a tiny
random model) and on an OpenAI-compatible endpoint (a fake server on loopback)."""

import json
import re

import pytest

from _texts import TEXTS
from humpback.data.dedup import content_id
from humpback.models.config import VLLMConfig
from humpback.prompts import read_template
from humpback.rewrite.config import FaithfulnessConfig, RewriteConfig
from humpback.rewrite.faithful import faithfulness, strip_lead_in
from humpback.rewrite.run import make_rewriter, rewrite_pairs, rewriter_identity
from humpback.rewrite.schema import CACHE_FILE, REWRITTEN_SCHEMA

TEMPLATE = read_template("rewrite")
CHECK = FaithfulnessConfig()
TEA = TEXTS["tea"]
INVENTED = "Quantum chromodynamics describes how gluons bind quarks inside protons and neutrons."


def _pairs(*names):
    return [{"id": content_id(TEXTS[n]), "instruction": f"Tell me about {n}.", "response": TEXTS[n], "score": 5,
             "expected_score": 4.5, "url": f"https://example.org/{n}"} for n in names]


def _faithful(segment: str) -> str:
    """A rewrite a good model might write: the segment's first three sentences, reordered."""
    sentences = segment.split(". ")[:3]
    return "Here is what you need to know. " + ". ".join(reversed(sentences)) + "."


@pytest.mark.parametrize("rewrite, problem", [
    (_faithful(TEA), None),
    (INVENTED, "low_overlap"),  # says what the segment never does
    ("Tea is enjoyed.", "low_coverage"),  # true, but the facts are gone
    ("   ", "empty"),
    ("!!! ...", "empty"),
    (TEA + " " + TEA.upper() + " " + TEA, "repetitive"),  # a loop, as small models write them
    (TEA + " " + " ".join(" ".join(reversed(s.split())) + "." for s in TEA.split(". ")) + " " + " ".join(
        " ".join(s.split()[::2]) + "." for s in TEA.split(". ")) * 2, "too_long"),  # its own words, 3.5x as long
])
def test_the_faithfulness_check_names_what_a_rewrite_fails(rewrite, problem):
    assert faithfulness(rewrite, TEA, CHECK).problem == problem


def test_each_faithfulness_rule_is_a_param_and_null_turns_it_off():
    off = FaithfulnessConfig(max_repeated_fraction=None, min_overlap=None, min_coverage=None, min_length_ratio=None,
                             max_length_ratio=None)
    for text in (INVENTED, "Tea is enjoyed.", TEA * 3):
        assert faithfulness(text, TEA, off).problem is None
    short = FaithfulnessConfig(min_coverage=None, min_length_ratio=0.5)
    assert faithfulness("Tea has been enjoyed for thousands of years.", TEA, short).problem == "too_short"
    f = faithfulness(TEA, TEA, CHECK)
    assert (f.overlap, f.coverage, f.length_ratio) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="min_length_ratio 3.0 is above max_length_ratio 2.0"):
        FaithfulnessConfig(min_length_ratio=3.0)


@pytest.mark.parametrize("text, expected, had", [
    ("Sure! Here's the rewritten answer:\n\nGreen tea is steamed.", "Green tea is steamed.", True),
    ("Here is a clear reply to the request:\nGreen tea is steamed.", "Green tea is steamed.", True),
    ("Green tea is steamed. Here is why: it keeps the flavour.", "Green tea is steamed. Here is why: it keeps the flavour.", False),
])
def test_a_chat_models_lead_in_is_removed(text, expected, had):
    assert strip_lead_in(text) == (expected, had)


def _endpoint_cfg(url, **kw):
    return RewriteConfig(enabled=True, generation={"engine": "openai", "temperature": 0.0},
                         openai={"base_url": url, "model": "rewriter", "api_key_env": "HUMPBACK_TEST_KEY",
                                 "max_retries": 0, "concurrency": 1, "timeout_s": 5}, **{"chunk_size": 2, **kw})


def _run(pairs, out, cfg, factory=None):
    identity = rewriter_identity(cfg, TEMPLATE, VLLMConfig())
    return rewrite_pairs(pairs, out, cfg, TEMPLATE, identity, factory or (lambda: make_rewriter(cfg, VLLMConfig())),
                         progress=False)


def _no_engine():
    raise AssertionError("every rewrite was cached: no engine should be built")


def test_an_endpoint_rewrites_each_pair_and_a_rerun_asks_only_for_what_failed(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("HUMPBACK_TEST_KEY", "sk-test")
    failed_once = []

    def rewriter(body):  # reads the prompt as a served model would
        prompt = body["messages"][0]["content"]
        if TEXTS["sourdough"] in prompt and not failed_once:
            failed_once.append(1)
            return "500"
        if TEXTS["bikes"] in prompt:
            return INVENTED
        segment = next(t for t in TEXTS.values() if t in prompt)
        return "Sure! Here's the rewritten answer:\n\n" + _faithful(segment)

    server = fake_server([], default=rewriter)
    pairs, cfg = _pairs("tea", "bikes", "sourdough"), _endpoint_cfg(server.url)
    table, report = _run(pairs, tmp_path, cfg)
    assert (report.requested, report.failed, report.rewritten) == (3, 1, 1)
    assert report.unfaithful["low_overlap"] == 1 and report.lead_in_removed == 1 and "HTTP 500" in report.reasons[0]
    body = server.requests[0]["body"]
    assert body["model"] == "rewriter" and body["temperature"] == 0 and "top_p" not in body
    assert "Tell me about tea." in body["messages"][0]["content"] and TEA in body["messages"][0]["content"]

    table, report = _run(pairs, tmp_path, cfg)  # the next run asks for the failed pair alone
    assert (report.requested, report.reused, report.failed) == (1, 2, 0)
    rows = table.to_pylist()
    assert table.schema == REWRITTEN_SCHEMA and [r["url"] for r in rows] == ["https://example.org/tea",
                                                                              "https://example.org/sourdough"]
    assert all(r["rewritten"] and not r["response"].startswith("Sure") for r in rows)
    assert rows[0]["original_response"] == TEA and rows[0]["response"] == _faithful(TEA)
    metrics = report.metrics(rows)
    assert metrics["kept"] == 2 and metrics["dropped"] == 1 and metrics["unfaithful"]["low_overlap"] == 1

    # new checks reuse every rewrite: unfaithful ones kept as curated instead of dropped
    table, report = _run(pairs, tmp_path, _endpoint_cfg(server.url, unfaithful="original"), _no_engine)
    bikes = next(r for r in table.to_pylist() if r["url"].endswith("bikes"))
    assert table.num_rows == 3 and not bikes["rewritten"] and bikes["response"] == TEXTS["bikes"]
    assert report.metrics(table.to_pylist())["kept_original"] == 1

    # two curated pairs with the same instruction and segment share one request and one rewrite
    twin = dict(pairs[0], id="twin")
    asked = len(server.requests)
    table, report = _run([pairs[0], twin], tmp_path / "twins", cfg)  # a new cache folder
    assert len(server.requests) == asked + 1 and report.requested == 1 and table.num_rows == 2

    # pairs no longer curated leave the cache: it holds what a from-scratch run would
    _run(pairs[:1], tmp_path, cfg, _no_engine)
    assert len((tmp_path / CACHE_FILE).read_text().splitlines()) == 1


def test_the_hf_engine_rewrites_and_a_killed_run_resumes_from_its_last_chunk(tiny_model_dir, tmp_path):
    from humpback.models.hf import HFEngine

    cfg = RewriteConfig(enabled=True, model=str(tiny_model_dir), chunk_size=1,
                        generation={"max_new_tokens": 6, "batch_size": 2, "precision": "fp32", "temperature": 1.0,
                                    "top_p": 1.0},  # greedy, a random model writes newlines only
                        faithfulness={"max_repeated_fraction": None, "min_overlap": None, "min_coverage": None,
                                      "min_length_ratio": None, "max_length_ratio": None})
    engine = make_rewriter(cfg, VLLMConfig())
    assert isinstance(engine, HFEngine)
    calls = []

    class Killed(RuntimeError):
        pass

    class DiesOnSecondChunk:
        def generate(self, conversations, sampling, on_batch=None):
            calls.append(len(conversations))
            if len(calls) == 2:
                raise Killed()
            return engine.generate(conversations, sampling, on_batch)

    pairs = _pairs("tea", "bikes", "sourdough")
    with pytest.raises(Killed):
        _run(pairs, tmp_path, cfg, DiesOnSecondChunk)
    assert len((tmp_path / CACHE_FILE).read_text().splitlines()) == 1  # the first chunk was saved at once
    calls.clear()
    table, report = _run(pairs, tmp_path, cfg, lambda: engine)
    assert (report.requested, report.reused) == (2, 1)
    assert table.num_rows == 3 and all(table.column("rewritten").to_pylist())
    cached = [json.loads(line)["text"] for line in (tmp_path / CACHE_FILE).read_text().splitlines()]
    assert sorted(table.column("response").to_pylist()) == sorted(strip_lead_in(t)[0] for t in cached)
    # the model's md5 is in the key: the same pairs under another model are rewritten again
    assert rewriter_identity(cfg, TEMPLATE, VLLMConfig())["model"]["md5"]
    again, report = _run(pairs, tmp_path, cfg, _no_engine)
    assert again.equals(table) and report.requested == 0


@pytest.mark.parametrize("name, key", [("backward", "prompts.backward"), ("rate", "curate.template"),
                                       ("judge", "evaluate.judge.template"), ("rewrite", "rewrite.template")])
def test_a_template_file_that_is_missing_or_lacks_a_placeholder_is_named_by_its_params_key(name, key, tmp_path):
    """Regression: a missing rewrite.template was reported as 'prompts.rewrite', a key that does not exist."""
    with pytest.raises(FileNotFoundError, match=rf"^{re.escape(key)}: cannot read '{re.escape(str(tmp_path))}/nope.txt'"):
        read_template(name, str(tmp_path / "nope.txt"))
    bare = tmp_path / "bare.txt"
    bare.write_text("no placeholders at all")
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}: {re.escape(str(bare))}: the template must contain"):
        read_template(name, str(bare))

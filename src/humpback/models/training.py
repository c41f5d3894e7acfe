"""Supervised fine-tuning for every model of the method: M_yx (backward), M0 and M1..Mn.

One recipe, configured by data: examples are conversational prompt/completion pairs, so trl's
SFTTrainer computes the loss on the completion tokens only (the paper: loss on the output only).
Optimiser settings are the paper's: lr 1e-5 decaying linearly to 9e-6, weight decay 0.1,
dropout 0.1, batch 32 (8 under 3,000 examples).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from humpback.config import PromptsConfig, TrainConfig
from humpback.models.device import use_bf16
from humpback.models.loading import save_checkpoint
from humpback.prompts import backward_messages, forward_messages

log = logging.getLogger(__name__)

ROLES = ("backward", "forward")


def backward_examples(pairs: list[dict], template: str) -> list[dict]:
    """M_yx learns p(instruction | response): the response is the prompt, the instruction the target."""
    return [
        {"prompt": backward_messages(p["response"], template),
         "completion": [{"role": "assistant", "content": p["instruction"]}]}
        for p in pairs
    ]


def forward_examples(pairs: list[dict], tag: str | None, prompts: PromptsConfig) -> list[dict]:
    """Forward models learn p(response | instruction), with the data source's tag in the prompt."""
    return [
        {"prompt": forward_messages(p["instruction"], tag, prompts),
         "completion": [{"role": "assistant", "content": p["response"]}]}
        for p in pairs
    ]


def effective_batch_size(cfg: TrainConfig, n_examples: int) -> int:
    return cfg.small_data_batch_size if n_examples < cfg.small_data_threshold else cfg.batch_size


def _set_dropout(model, p: float) -> None:
    """Set every dropout probability the model has (Llama: attention_dropout only, no hidden dropout)."""
    for n in ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "embd_pdrop",
              "attn_pdrop", "hidden_dropout_prob", "attention_probs_dropout_prob"):
        if isinstance(getattr(model.config, n, None), float):
            setattr(model.config, n, p)
    # modules read the probability at construction: update live dropout layers as well
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    for module in model.modules():
        if hasattr(module, "attention_dropout") and isinstance(module.attention_dropout, float):
            module.attention_dropout = p


@dataclass
class TrainResult:
    examples: int
    steps: int
    batch_size: int
    prompt_tokens: int
    completion_tokens: int
    final_loss: float
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    precision: str = "fp32"


def build_trainer(base_dir: str | Path, examples: list[dict], cfg: TrainConfig, work_dir: str | Path,
                  report_to_mlflow: bool = False, progress: bool = True):
    """The configured SFTTrainer (tokenised dataset, labels masked to the completion)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("no training examples")
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)  # fp32 master weights
    _set_dropout(model, cfg.dropout)
    batch = effective_batch_size(cfg, len(examples))
    micro = min(cfg.micro_batch_size, batch)
    if batch % micro:
        raise ValueError(f"train.micro_batch_size ({micro}) must divide the batch size ({batch})")
    steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(examples) / batch))
    peft_config = None
    if cfg.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                 target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")
    args = SFTConfig(
        output_dir=str(work_dir),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=batch // micro,
        max_steps=steps,
        learning_rate=cfg.learning_rate,
        # linear decay from learning_rate to final_learning_rate over the run (polynomial, power 1)
        lr_scheduler_type="polynomial",
        lr_scheduler_kwargs={"lr_end": cfg.final_learning_rate, "power": 1.0},
        weight_decay=cfg.weight_decay,
        bf16=use_bf16(cfg.precision),
        max_length=cfg.max_length,
        completion_only_loss=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to=["mlflow"] if report_to_mlflow else "none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                      processing_class=tok, peft_config=peft_config)


def train(base_dir: str | Path, examples: list[dict], cfg: TrainConfig, out_dir: str | Path,
          report_to_mlflow: bool = False, progress: bool = True) -> TrainResult:
    """Fine-tune the checkpoint in ``base_dir`` on ``examples`` and save it to ``out_dir``.

    With ``report_to_mlflow`` the Trainer logs its arguments and loss curve into the active
    MLflow run (the caller opens it, so its own tags and metrics land in the same run).
    """
    work = Path(tempfile.mkdtemp(prefix="humpback-train-"))
    try:
        trainer = build_trainer(base_dir, examples, cfg, work, report_to_mlflow, progress)
        prompt_tokens = completion_tokens = 0
        for labels in trainer.train_dataset["labels"]:  # after truncation; -100 marks prompt tokens
            trained = sum(1 for t in labels if t != -100)
            completion_tokens += trained
            prompt_tokens += len(labels) - trained
        trainer.train()
        model = trainer.model
        if cfg.method == "lora":
            model = model.merge_and_unload()  # plain weights: loadable without peft
        shutil.rmtree(out_dir, ignore_errors=True)
        save_checkpoint(model, trainer.processing_class, out_dir, cfg.save_dtype)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    history = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return TrainResult(
        examples=len(examples), steps=trainer.args.max_steps,
        batch_size=trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        final_loss=history[-1][1] if history else float("nan"), loss_history=history,
        precision="bf16" if trainer.args.bf16 else "fp32",
    )

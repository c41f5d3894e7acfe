"""Supervised fine-tuning for every model of the method: M_yx (backward), M0 and M1..Mn.

One recipe, configured by data: examples are conversational prompt/completion pairs, so trl's
SFTTrainer computes the loss on the completion tokens only (the paper: loss on the output only).
Optimiser settings are the paper's: lr 1e-5 decaying linearly to 9e-6, weight decay 0.1,
dropout 0.1, batch 32 (8 under 3,000 examples).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.utils import DistributedType
from transformers import TrainerCallback

from humpback.core.keys import content_key, path_md5
from humpback.models.device import use_bf16
from humpback.models.loading import save_checkpoint
from humpback.prompts import backward_messages, forward_messages
from humpback.prompts.config import PromptsConfig
from humpback.train.config import TrainConfig

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
    resumed_from_step: int | None = None
    processes: int = 1
    # (model, tokenizer) as saved, for scoring without loading it again; None where the weights were
    # sharded across processes (FSDP, ZeRO-3): the saved directory is the whole model then
    saved: tuple | None = field(default=None, repr=False)


def run_key(base_dir: str | Path, examples: list[dict], cfg: TrainConfig) -> str:
    """Everything a checkpoint depends on: base weights, examples, the recipe, the world size and the
    libraries that wrote it. A checkpoint is resumed only under the same key."""
    import transformers
    import trl

    recipe = cfg.model_dump(exclude={"checkpoint_dir", "logging_steps"})
    recipe["distributed"] = {"world_size": cfg.distributed.world_size, "strategy": cfg.distributed.strategy}
    return content_key(path_md5(base_dir), json.dumps(examples, sort_keys=True, ensure_ascii=False), recipe,
                       f"{torch.__version__} {transformers.__version__} {trl.__version__}", length=12)


COMPLETE = "humpback-complete"  # written into a checkpoint once every process has saved its part


class _MarkComplete(TrainerCallback):
    """Trainer writes a checkpoint's files one by one: mark it complete once all are on disk, so a
    kill during a save never leaves a checkpoint that looks resumable."""

    def on_save(self, args, state, control, **kwargs):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # every rank's shard of the checkpoint is written
        if state.is_world_process_zero:
            (Path(args.output_dir) / f"checkpoint-{state.global_step}" / COMPLETE).touch()


class _NoFinalCheckpoint(TrainerCallback):
    """Trainer checkpoints the last step (weights and optimiser state: 16 bytes per parameter) just
    before :func:`train` saves the model itself; that write is pure cost, so it is skipped."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = False
        return control


def last_complete_checkpoint(work: Path) -> Path | None:
    """The newest checkpoint in ``work`` that was written completely; None if there is none."""
    done = [d for d in work.glob("checkpoint-*") if (d / COMPLETE).is_file() and d.name[11:].isdigit()]
    return max(done, key=lambda d: int(d.name[11:]), default=None)


def load_dtype(cfg: TrainConfig) -> torch.dtype:
    """bf16 weights under DeepSpeed with bf16 (its optimiser keeps the fp32 master copy); fp32
    master weights everywhere else (autocast computes in bf16 where precision says so)."""
    if cfg.distributed.strategy.startswith("deepspeed") and cfg.distributed.world_size > 1 and use_bf16(cfg.precision):
        return torch.bfloat16
    return torch.float32


def build_trainer(base_dir: str | Path, examples: list[dict], cfg: TrainConfig, work_dir: str | Path,
                  report_to_mlflow: bool = False, progress: bool = True):
    """The configured SFTTrainer (tokenised dataset, labels masked to the completion)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("no training examples")
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=load_dtype(cfg))
    _set_dropout(model, cfg.dropout)
    batch = effective_batch_size(cfg, len(examples))
    world = cfg.distributed.world_size
    micro = min(cfg.micro_batch_size, batch // world) or 1
    if batch % (micro * world):
        raise ValueError(f"train.micro_batch_size ({micro}) x processes ({world}) must divide the batch "
                         f"size ({batch}; train.batch_size or small_data_batch_size)")
    steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(examples) / batch))
    peft_config = None
    if cfg.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(**cfg.lora, task_type="CAUSAL_LM")
    args = SFTConfig(
        output_dir=str(work_dir),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=batch // (micro * world),
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
        save_strategy="steps" if cfg.checkpoint_steps else "no",
        save_steps=cfg.checkpoint_steps or 500,
        save_total_limit=2,  # the newest complete one survives a kill during the next save
        report_to=["mlflow"] if report_to_mlflow else "none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        **cfg.sft,
    )
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                      processing_class=tok, peft_config=peft_config, callbacks=[_MarkComplete(), _NoFinalCheckpoint()])


def train(base_dir: str | Path, examples: list[dict], cfg: TrainConfig, out_dir: str | Path,
          report_to_mlflow: bool = False, progress: bool = True, name: str | None = None) -> TrainResult | None:
    """Fine-tune the checkpoint in ``base_dir`` on ``examples`` and save it to ``out_dir``.

    Checkpoints go to ``cfg.checkpoint_dir/<name>-<run key>`` every ``cfg.checkpoint_steps``; a call
    that finds a complete one under the same key resumes from it and ends with the weights an
    uninterrupted run gives. The directory is removed once the model is saved. Under ``accelerate
    launch`` every process trains; only the main one writes ``out_dir`` and returns the result
    (the others return None). With ``report_to_mlflow`` the Trainer logs its arguments and loss
    curve into the active MLflow run (the caller opens it on the main process).
    """
    name = name or Path(out_dir).name
    keep = cfg.checkpoint_steps is not None
    work = (Path(cfg.checkpoint_dir) / f"{name}-{run_key(base_dir, examples, cfg)}" if keep
            else Path(tempfile.mkdtemp(prefix="humpback-train-")))
    trainer = build_trainer(base_dir, examples, cfg, work, report_to_mlflow, progress)
    acc = trainer.accelerator
    resume = last_complete_checkpoint(work) if keep else None
    if resume is not None:
        if acc.is_main_process:
            log.info("%s: resuming from %s (step %s of %d)", name, resume, resume.name[11:], trainer.args.max_steps)
    elif keep and work.exists() and acc.is_main_process:
        log.info("%s: no complete checkpoint in %s; training from the start", name, work)
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        # under FSDP / ZeRO-3 the weights are sharded: every process takes part in gathering them
        sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        state = acc.get_state_dict(trainer.model) if sharded and cfg.method == "full" else None
        saved = None
        if acc.is_main_process:
            model = acc.unwrap_model(trainer.model)
            if cfg.method == "lora":
                model = model.merge_and_unload()  # plain weights: loadable without peft
            shutil.rmtree(out_dir, ignore_errors=True)
            save_checkpoint(model, trainer.processing_class, out_dir, cfg.save_dtype, state_dict=state)
            saved = (model, trainer.processing_class) if state is None else None
        acc.wait_for_everyone()
    except BaseException:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        raise
    if not acc.is_main_process:
        return None
    shutil.rmtree(work, ignore_errors=True)  # the model is saved: its checkpoints are done with
    prompt_tokens = completion_tokens = 0
    for labels in trainer.train_dataset["labels"]:  # after truncation; -100 marks prompt tokens
        trained = sum(1 for t in labels if t != -100)
        completion_tokens += trained
        prompt_tokens += len(labels) - trained
    history = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return TrainResult(
        examples=len(examples), steps=trainer.args.max_steps,
        batch_size=trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps * acc.num_processes,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        final_loss=history[-1][1] if history else float("nan"), loss_history=history,
        precision="bf16" if trainer.args.bf16 else "fp32",
        resumed_from_step=int(resume.name[11:]) if resume else None, processes=acc.num_processes, saved=saved,
    )

"""The `train` section: one recipe for every model (M_yx, M0, M1..Mn)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from humpback.core.config import Fraction, NonNegInt, PositiveInt, Section

# LoRA: peft's LoraConfig fields as they are (r, lora_alpha, lora_dropout, target_modules, use_rslora,
# use_dora, ...); the stage sets task_type. Keys left out take these defaults, then peft's own.
LORA_DEFAULTS = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}
OWNED_LORA_FIELDS = {"task_type": "the stage (CAUSAL_LM)"}


def lora_fields() -> set[str]:
    """The fields of the installed peft's LoraConfig (imported only when train.lora is checked)."""
    import dataclasses

    from peft import LoraConfig

    return {f.name for f in dataclasses.fields(LoraConfig) if f.init}


class DistributedConfig(Section):
    """How a train stage runs: one process, or ``accelerate launch`` over processes and machines.

    The stage launches itself when ``processes * machines > 1``; on each extra machine start the
    same command with ``HUMPBACK_MACHINE_RANK=<1..machines-1>`` (the shared file system holds the
    repository). The strategy picks a shipped accelerate config (src/humpback/train/accelerate/);
    ``config_file`` replaces it with your own (offload, hostfile, ...).
    """

    processes: PositiveInt = 1  # per machine: one per GPU
    machines: PositiveInt = 1
    # ddp: a full copy per GPU; fsdp: parameters, gradients and optimiser state sharded over all
    # GPUs (FSDP2); deepspeed_zero2: optimiser state and gradients sharded; deepspeed_zero3: all sharded
    strategy: Literal["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"] = "ddp"
    config_file: str | None = None
    main_process_ip: str | None = None  # machine 0's address, needed with machines > 1
    main_process_port: Annotated[int, Field(gt=0, lt=65536)] = 29500

    @property
    def world_size(self) -> int:
        return self.processes * self.machines

    @model_validator(mode="after")
    def _reachable(self) -> "DistributedConfig":
        if self.machines > 1 and not self.main_process_ip:
            raise ValueError("machines > 1 needs main_process_ip (the address of machine 0)")
        return self


# SFTConfig fields the project sets itself: from the keys beside them, or because the stage owns them.
OWNED_SFT_FIELDS = {
    "learning_rate": "train.learning_rate", "lr_scheduler_type": "train.final_learning_rate",
    "lr_scheduler_kwargs": "train.final_learning_rate", "weight_decay": "train.weight_decay",
    "per_device_train_batch_size": "train.micro_batch_size",
    "gradient_accumulation_steps": "train.batch_size and train.micro_batch_size",
    "max_steps": "train.max_steps", "num_train_epochs": "train.epochs", "max_length": "train.max_length",
    "bf16": "train.precision", "fp16": "train.precision", "seed": "train.seed", "data_seed": "train.seed",
    "logging_steps": "train.logging_steps", "save_steps": "train.checkpoint_steps",
    "output_dir": "train.checkpoint_dir", "save_strategy": "train.checkpoint_steps",
    "save_total_limit": "the stage (two checkpoints)", "completion_only_loss": "the stage (loss on the output only)",
    "report_to": "the stage (MLflow)", "resume_from_checkpoint": "the stage (resumes by itself)",
    "use_cpu": "the stage (the device it finds)", "fsdp": "train.distributed.strategy",
    "fsdp_config": "train.distributed.strategy", "deepspeed": "train.distributed.strategy",
}


def sft_fields() -> set[str]:
    """The fields of the installed trl's SFTConfig (imported only when train.sft is not empty)."""
    import dataclasses

    from trl import SFTConfig

    return {f.name for f in dataclasses.fields(SFTConfig) if f.init}


class TrainConfig(Section):
    """One recipe for every model (M_yx, M0, M1..Mn): the paper's (§3.1) except where marked demo."""

    method: Literal["full", "lora"] = "full"
    learning_rate: Annotated[float, Field(gt=0)] = 5e-5  # demo (5 steps); the paper: 1e-5
    final_learning_rate: Annotated[float, Field(ge=0)] = 4.5e-5  # linear decay to this (the paper: 9e-6)
    weight_decay: Annotated[float, Field(ge=0)] = 0.1
    dropout: Fraction = 0.0  # demo (CPU attention with dropout leaves its fused kernel); the paper: 0.1
    batch_size: PositiveInt = 32  # global: micro batch x gradient accumulation x processes
    small_data_batch_size: PositiveInt = 4  # demo; the paper: 8 when fine-tuning on fewer than 3,000 examples
    small_data_threshold: NonNegInt = 3000
    micro_batch_size: PositiveInt = 4  # per forward pass and process; the rest is gradient accumulation
    epochs: Annotated[float, Field(gt=0)] = 1.0
    max_steps: PositiveInt | None = 1  # demo; overrides epochs (the paper: null, train for `epochs`)
    max_length: PositiveInt = 320  # tokens per example, longer ones are truncated (demo; paper profile: 2048)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    save_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    seed: int = 0
    logging_steps: PositiveInt = 1
    # peft's LoraConfig fields, used when method is lora (see LORA_DEFAULTS): {r: 16, lora_alpha: 32, ...}
    lora: dict[str, Any] = LORA_DEFAULTS
    # Save a resumable checkpoint (weights, optimiser, scheduler, RNG, data position) every N steps
    # into checkpoint_dir/<model>-<key>; a rerun after a crash resumes from the last complete one.
    # null = no checkpoints (a crash restarts the training).
    checkpoint_steps: PositiveInt | None = 100
    checkpoint_dir: str = ".humpback/train"  # outside DVC's outputs, so a failed stage keeps it
    distributed: DistributedConfig = DistributedConfig()
    # Any other field of trl's SFTConfig, passed through (gradient_checkpointing, padding_free,
    # packing, warmup_ratio, optim, ...); checked against the installed trl.
    sft: dict[str, Any] = {}

    @model_validator(mode="after")
    def _decay(self) -> "TrainConfig":
        if self.final_learning_rate > self.learning_rate:
            raise ValueError("final_learning_rate must not exceed learning_rate (the schedule decays)")
        return self

    @model_validator(mode="after")
    def _lora_shards(self) -> "TrainConfig":
        if self.method == "lora" and self.distributed.world_size > 1 and self.distributed.strategy in (
                "fsdp", "deepspeed_zero3"):
            raise ValueError("method lora with distributed.strategy fsdp or deepspeed_zero3 is not supported "
                             "(the adapters are merged on one process); use ddp or deepspeed_zero2")
        return self

    @field_validator("lora")
    @classmethod
    def _lora_fields(cls, lora: dict[str, Any]) -> dict[str, Any]:
        for key in lora:
            if key in OWNED_LORA_FIELDS:
                raise ValueError(f"lora.{key} is set by {OWNED_LORA_FIELDS[key]}; remove it from train.lora")
        if set(lora) <= set(LORA_DEFAULTS):  # the common case: no need to import peft to know them
            return {**LORA_DEFAULTS, **lora}
        unknown = sorted(set(lora) - lora_fields())
        if unknown:
            import peft

            hint = {"alpha": " (peft calls it lora_alpha)", "dropout": " (peft calls it lora_dropout)"}
            raise ValueError(f"lora.{unknown[0]} is not a field of LoraConfig in the installed peft "
                             f"{peft.__version__}{hint.get(unknown[0], '')} "
                             "(see https://huggingface.co/docs/peft/package_reference/lora)")
        return {**LORA_DEFAULTS, **lora}

    @field_validator("sft")
    @classmethod
    def _sft_fields(cls, sft: dict[str, Any]) -> dict[str, Any]:
        if not sft:
            return sft
        for key in sft:
            if key in OWNED_SFT_FIELDS:
                raise ValueError(f"sft.{key} is set by {OWNED_SFT_FIELDS[key]}; remove it from train.sft")
        known = sft_fields()
        unknown = sorted(set(sft) - known)
        if unknown:
            import trl

            raise ValueError(f"sft.{unknown[0]} is not a field of SFTConfig in the installed trl "
                             f"{trl.__version__} (see https://huggingface.co/docs/trl/sft_trainer)")
        return sft


# The top-level section `train_backward`: fields of `train` that differ for the backward model M_yx
# alone, as a (type, default) for load_sections. The forward models never read it, so an edit to it
# reruns train_backward only. Demo: M_yx is what makes the data, so it gets the training budget (6
# steps at a larger rate write a request for every demo segment; one step writes mostly talk about
# the text; benchmarks/backward_recipe.py), while the forward models, whose quality the demo cannot
# show, take one step.
# The paper trains every model with one recipe (paper profile: train's values).
TRAIN_BACKWARD_DEMO = {"max_steps": 6, "learning_rate": 3.0e-4, "final_learning_rate": 3.0e-5}
TRAIN_BACKWARD = (dict[str, Any], TRAIN_BACKWARD_DEMO)


def backward_recipe(train: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """The recipe of M_yx: ``train`` with the fields ``train_backward`` sets, validated as a whole."""
    if not overrides:
        return train
    unknown = sorted(set(overrides) - set(TrainConfig.model_fields))
    if unknown:
        raise ValueError(f"train_backward.{unknown[0]} is not a key of the train section "
                         f"(it takes train's keys: {', '.join(sorted(TrainConfig.model_fields))})")
    return TrainConfig.model_validate({**train.model_dump(), **overrides})

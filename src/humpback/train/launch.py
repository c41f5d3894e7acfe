"""Run a train stage on many processes and machines: the stage re-launches itself under
``accelerate launch`` with the config file of ``train.distributed.strategy``.

One entry point whatever the scale: ``dvc repro`` runs ``python pipeline/train.py ...`` as always,
and the script turns into ``accelerate launch ... pipeline/train.py ...`` when params ask for more
than one process. Under the launcher (``LOCAL_RANK`` set) it trains as one rank.
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path

from humpback.train.config import DistributedConfig, TrainConfig

MACHINE_RANK_ENV = "HUMPBACK_MACHINE_RANK"


def launched() -> bool:
    """True inside a process started by accelerate launch or torchrun."""
    return "LOCAL_RANK" in os.environ


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def accelerate_config(dist: DistributedConfig) -> Path:
    """The accelerate config file: the user's, else the one shipped for the strategy."""
    if dist.config_file:
        path = Path(dist.config_file)
        if not path.is_file():
            raise FileNotFoundError(f"train.distributed.config_file: {path} does not exist")
        return path
    return Path(str(files("humpback.train") / "accelerate" / f"{dist.strategy}.yaml"))


def launch_argv(cfg: TrainConfig, script_argv: list[str], cuda: bool | None = None) -> list[str]:
    """The ``accelerate launch`` command line that runs ``script_argv`` as every rank of this machine."""
    import torch

    from humpback.models.device import use_bf16

    dist = cfg.distributed
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda and dist.strategy != "ddp":
        # accelerate runs FSDP only on accelerators and would quietly fall back to DDP on CPU
        raise RuntimeError(f"train.distributed.strategy {dist.strategy} needs GPUs; on CPU use ddp (gloo)")
    rank = os.environ.get(MACHINE_RANK_ENV, "0")
    if not rank.isdigit() or int(rank) >= dist.machines:
        raise RuntimeError(f"{MACHINE_RANK_ENV}={rank}: expected 0 to {dist.machines - 1} (train.distributed.machines)")
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config(dist)),
            "--num_processes", str(dist.world_size), "--num_machines", str(dist.machines),
            "--machine_rank", rank, "--main_process_port", str(dist.main_process_port),
            "--mixed_precision", "bf16" if use_bf16(cfg.precision) else "no"]
    if dist.main_process_ip:
        argv += ["--main_process_ip", dist.main_process_ip]
    return argv + script_argv


def relaunch_if_distributed(cfg: TrainConfig, script: str, args: list[str]) -> None:
    """Replace this process by the launcher when params ask for several processes (does not return)."""
    if cfg.distributed.world_size == 1 or launched():
        return
    argv = launch_argv(cfg, [script, *args])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)

"""Lineage: the git commit, DVC's hashes and the MLflow run of one pipeline execution."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import yaml

from humpback.tracking.store import project_root

log = logging.getLogger(__name__)


def git_commit(cwd: str | Path = ".") -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def dvc_out_hashes(paths: list[str], lock_path: str | Path = "dvc.lock") -> dict[str, str]:
    """DVC's md5 of each path, as recorded in dvc.lock by the stage that produced it."""
    try:
        lock = yaml.safe_load(Path(lock_path).read_text()) or {}
    except OSError:
        return {}
    recorded = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            recorded[out["path"].rstrip("/")] = out.get("md5")
    return {p: recorded[p.rstrip("/")] for p in paths if recorded.get(p.rstrip("/"))}


def base_tags(inputs: list[str]) -> dict[str, str]:
    """git commit, DVC stage/experiment, and the DVC hash of every input path."""
    tags = {
        "git.commit": git_commit() or "unknown",
        "dvc.stage": os.environ.get("DVC_STAGE", "manual"),
        "dvc.exp": os.environ.get("DVC_EXP_NAME", "workspace"),
    }
    for path, md5 in dvc_out_hashes(inputs).items():
        tags[f"dvc.input.{path}"] = md5
    return tags


def log_params(client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]  # MLflow's param value limit
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


# ------------------------------------------------------------------------------ pipeline executions
def execution(outputs=()) -> tuple[str, str]:
    """(key, name) of the pipeline execution this stage runs in.

    DVC records which of its processes runs a stage: while the command runs, the repo's
    ``.dvc/tmp/rwlock`` holds the stage's outputs for writing under that `dvc` process's pid (and
    its command line). Every stage of one `dvc repro` or `dvc exp run` is held by the same process,
    so its pid and start time identify the execution; a queue worker runs several experiments, and
    ``DVC_EXP_NAME`` keeps them apart (and names the run). A script run by hand is its own execution.
    """
    import psutil

    exp = os.environ.get("DVC_EXP_NAME")
    holder = _rwlock_holder(outputs) if os.environ.get("DVC_STAGE") else None
    if holder is not None:
        try:
            started = int(psutil.Process(holder).create_time())
        except psutil.Error:
            started = 0
        return f"dvc-{holder}-{started}-{exp or 'workspace'}", exp or "dvc repro"
    me = psutil.Process()
    return f"manual-{me.pid}-{int(me.create_time())}", "manual"


def _rwlock_holder(outputs) -> int | None:
    """The pid of the `dvc` process that holds this stage's outputs in the repo's rwlock (the
    only process holding any, where the outputs are not named)."""
    import json

    for root in dict.fromkeys([Path.cwd(), project_root()]):
        try:
            writes = json.loads((root / ".dvc" / "tmp" / "rwlock").read_text()).get("write") or {}
        except (OSError, ValueError):
            continue
        ours = {str((Path.cwd() / o).resolve()) for o in outputs}
        pids = {e["pid"] for path, e in writes.items() if str(Path(path).resolve()) in ours}
        pids = pids or {e["pid"] for e in writes.values()}
        if len(pids) == 1:
            return pids.pop()
    return None


def parent_run_id(client, experiment_id: str, params: dict, outputs=()) -> str:
    """The MLflow run of this pipeline execution, created by its first stage: every value of the
    stage's params file (``params``, as written) as a param, so the UI compares experiments by
    threshold, model, ...; git commit and DVC experiment as tags."""
    from humpback.core.config import flatten

    key, name = execution(outputs)
    found = client.search_runs([experiment_id], filter_string=f"tags.`humpback.execution` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    tags = {"humpback.execution": key, "humpback.role": "pipeline", "git.commit": git_commit() or "unknown",
            "dvc.exp": os.environ.get("DVC_EXP_NAME", "workspace")}
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    log_params(client, run.info.run_id, flatten(params))
    return run.info.run_id

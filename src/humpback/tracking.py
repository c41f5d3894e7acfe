"""MLflow glue: where the store is, which experiment, and the tags that tie a run to git and DVC.

The store is ``sqlite:///<project root>/mlflow.db`` unless MLFLOW_TRACKING_URI says otherwise. The
project root is DVC_ROOT when a stage runs under DVC (queued experiments run in a temp copy, but
DVC_ROOT points at the real repo), else the working directory. Artifacts go to
``<root>/mlartifacts``, fixed when the experiment is created.
"""

from __future__ import annotations

import logging
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import yaml

from humpback.io import dir_digest

log = logging.getLogger(__name__)


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


# MLflow 3's UI opens an experiment on its GenAI pages unless the experiment says it trains models
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def setup(experiment: str) -> str:
    """Point MLflow at the project's store and return the experiment id (created if missing), marked
    as a model-training experiment so that the UI shows its runs."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        exp_id = found.experiment_id
        if not EXPERIMENT_KIND.items() <= found.tags.items():
            mlflow.MlflowClient().set_experiment_tag(exp_id, *next(iter(EXPERIMENT_KIND.items())))
    else:
        exp_id = mlflow.create_experiment(experiment, artifact_location=(project_root() / "mlartifacts").as_uri(),
                                          tags=EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def runs_page(experiment: str) -> str | None:
    """The UI route of an experiment's runs table (``#/experiments/<id>/runs``), None if it does not exist."""
    from mlflow import MlflowClient

    found = MlflowClient(tracking_uri=tracking_uri()).get_experiment_by_name(experiment)
    return f"#/experiments/{found.experiment_id}/runs" if found is not None else None


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


_PARENT: dict[str, str] = {}  # the current stage's parent run id, for log_to_parent


@contextmanager
def stage_run(cfg, run_name: str, tags: dict[str, str], outputs: list[str] = ()):
    """An MLflow child run for one stage, under the run of its pipeline execution (one `dvc
    repro` or `dvc exp run`). Inputs' DVC hashes come in ``tags`` (:func:`base_tags`); outputs
    get a content digest when the stage ends and their DVC md5 once DVC has recorded it in
    dvc.lock (filled in by the next stage of the same execution). The run, and its parent, end
    FAILED if the stage raises."""
    import mlflow

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    exp_id = setup(cfg.mlflow.experiment)
    client = mlflow.MlflowClient()
    parent = parent_run_id(client, exp_id, cfg.as_written())
    _PARENT["id"] = parent
    _backfill_output_hashes(client, exp_id, parent)
    tags = {**tags, "humpback.outputs": ",".join(outputs)} if outputs else dict(tags)
    try:
        with mlflow.start_run(run_name=run_name, tags=tags, parent_run_id=parent) as run:
            yield run
            for out in outputs:
                if Path(out).exists():
                    mlflow.set_tag(f"humpback.output_digest.{out}", dir_digest(out))
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    finally:
        mlflow.flush_async_logging()
    client.set_terminated(parent, "FINISHED")  # its end time moves on with every stage


def log_to_parent(metrics: dict[str, float]) -> None:
    """Headline numbers of a stage on its execution's run, where experiments are compared."""
    import mlflow

    if "id" not in _PARENT:
        return
    client = mlflow.MlflowClient()
    for key, value in metrics.items():
        if value is not None:
            client.log_metric(_PARENT["id"], key, float(value))


def log_engine(spec, ran_on: str | None = None) -> None:
    """A model stage's engine as params of its run (the generation section, and the ``vllm``
    section where vLLM runs), and where its missing work ran as the tag ``humpback.ran_on``."""
    import mlflow

    params = {f"generation.{k}": v for k, v in spec.generation.model_dump().items()}
    if spec.engine == "vllm":
        params |= {f"vllm.{k}": v for k, v in spec.vllm.model_dump().items()}
    mlflow.log_params(params)
    if ran_on:
        mlflow.set_tag("humpback.ran_on", ran_on)


def _backfill_output_hashes(client, experiment_id: str, parent: str) -> None:
    """DVC writes an output's md5 to dvc.lock after its stage: tag earlier stages of this execution."""
    siblings = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    for run in siblings:
        outs = [p for p in run.data.tags.get("humpback.outputs", "").split(",") if p]
        missing = [p for p in outs if f"dvc.output.{p}" not in run.data.tags]
        for path, md5 in dvc_out_hashes(missing).items():
            client.set_tag(run.info.run_id, f"dvc.output.{path}", md5)


def model_run_id(experiment: str, name: str, model_dir: str | Path) -> str | None:
    """The training run that produced exactly this checkpoint (same name and content digest), if any."""
    import mlflow

    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = mlflow.search_runs(
        experiment_ids=[exp.experiment_id], output_format="list", max_results=1, order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`humpback.model` = '{name}' and tags.`humpback.output_digest` = '{dir_digest(model_dir)}'",
    )
    return runs[0].info.run_id if runs else None


# ------------------------------------------------------------------------------ pipeline executions
def execution() -> tuple[str, str]:
    """(key, name) of the pipeline execution this stage runs in.

    Every stage of one `dvc repro` or one `dvc exp run` is a child process of the same `dvc`
    process, so that process (its pid and start time) identifies the execution; the name is the
    DVC experiment's when there is one. A script run by hand is its own execution.
    """
    import psutil

    me = psutil.Process()
    for proc in me.parents():
        try:
            cmd = proc.cmdline()
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if any(Path(part).name == "dvc" for part in cmd[:2]) or cmd[1:3] == ["-m", "dvc"]:
            # a queue worker runs several experiments: the experiment's name keeps them apart
            exp = os.environ.get("DVC_EXP_NAME")
            return f"dvc-{proc.pid}-{int(proc.create_time())}-{exp or 'workspace'}", exp or "dvc repro"
    return f"manual-{me.pid}-{int(me.create_time())}", "manual"


def parent_run_id(client, experiment_id: str, params: dict) -> str:
    """The MLflow run of this pipeline execution, created by its first stage: every value of the
    stage's params file (``params``, as written) as a param, so the UI compares experiments by
    threshold, model, ...; git commit and DVC experiment as tags."""
    key, name = execution()
    found = client.search_runs([experiment_id], filter_string=f"tags.`humpback.execution` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    tags = {"humpback.execution": key, "humpback.role": "pipeline", "git.commit": git_commit() or "unknown",
            "dvc.exp": os.environ.get("DVC_EXP_NAME", "workspace")}
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    from mlflow.entities import Param

    from humpback.io import flatten

    items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]  # MLflow's param value limit
    for start in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[start : start + 100])
    return run.info.run_id


def log_datasets(datasets: dict[str, tuple[str, list[dict]]], context: str = "training") -> None:
    """Training data as MLflow dataset inputs: name, source path, size (rows) and a digest that is
    DVC's md5 of the path when dvc.lock has it (the same hash `dvc status` compares)."""
    import mlflow
    import pandas as pd

    hashes = dvc_out_hashes([path for path, _ in datasets.values()])
    for name, (path, rows) in datasets.items():
        frame = pd.DataFrame(rows, columns=["instruction", "response"])
        digest = (hashes.get(path) or dir_digest(path))[:36]
        mlflow.log_input(mlflow.data.from_pandas(frame, source=path, name=name, digest=digest), context=context)
        mlflow.set_tag(f"humpback.data.{name}", f"{path} rows={len(rows)} md5={hashes.get(path, 'n/a')}")

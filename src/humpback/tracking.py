"""MLflow glue: where the store is, which experiment, and the tags that tie a run to git and DVC.

A stage talks to MLflow through :func:`stage_run` alone: it names its role, inputs, outputs, the
config sections it reads and the model it trained or measured, and hands its metrics JSON to
:meth:`StageRun.finish`. Every tag, param name and parent-run lookup is made here.

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


def create_sqlite_store(uri: str) -> None:
    """Create a missing sqlite store whole or not at all: MLflow migrates a new database in about 30
    steps, and a stage killed among them left a half-migrated mlflow.db (an ``_alembic_tmp_*`` table)
    that failed every later stage. So the store is built under a temp name and linked into place
    (``os.link`` never replaces: a store another process finished first wins)."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if path.exists() or not path.parent.is_dir():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        store = SqlAlchemyStore(f"sqlite:///{tmp}", (project_root() / "mlartifacts").as_uri())
        store.engine.dispose()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def setup(experiment: str) -> str:
    """Point MLflow at the project's store and return the experiment id (created if missing), marked
    as a model-training experiment so that the UI shows its runs."""
    import mlflow

    create_sqlite_store(tracking_uri())
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


def _numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a metrics mapping as dotted MLflow metric names (text, flags, lists
    and nulls are not metrics)."""
    from humpback.io import flatten

    return {f"{prefix}{k}": float(v) for k, v in flatten(metrics).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _log_params(client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]  # MLflow's param value limit
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def _section(cfg, path: str):
    value = cfg.model_dump(mode="json")
    for part in path.split("."):
        value = value[part]
    return value


class StageRun:
    """What a stage tells its MLflow run once its work is done: :meth:`finish`. A no-op where the
    stage opened no run (the other processes of a distributed training)."""

    def __init__(self, run_id: str | None, parent_id: str | None, model: tuple[str, str] | None, prefix: str):
        self.run_id, self.parent_id, self.model, self.prefix = run_id, parent_id, model, prefix

    def finish(self, metrics: dict, *, parent: dict | None = None, params: dict | None = None,
               tags: dict | None = None, engine=None, ran_on: str | None = None, artifacts=(),
               tables: dict | None = None, on_model_run: bool = False) -> None:
        """Log the stage's metrics JSON (every number, dotted, under the stage's prefix), its
        headline numbers on the execution's run (``parent``), the params known only now, tags,
        where its model work ran (``ran_on``) and, under vLLM, the ``vllm`` settings of ``engine``;
        files as artifacts (a path, or a path and its folder) and DataFrames as MLflow tables.
        ``on_model_run``: the same metrics also on the training run of the model this stage
        measured (the UI compares models by them)."""
        if self.run_id is None:
            return
        import mlflow

        client = mlflow.MlflowClient()
        numbers = _numbers(metrics, self.prefix)
        if numbers:
            mlflow.log_metrics(numbers)
        params = dict(params or {})
        if engine is not None and engine.engine == "vllm":
            params |= {f"vllm.{k}": v for k, v in engine.vllm.model_dump().items()}
        if params:
            _log_params(client, self.run_id, params)
        tags = {**(tags or {}), **({"humpback.ran_on": ran_on} if ran_on else {})}
        if tags:
            mlflow.set_tags(tags)
        for item in artifacts:  # a path, or (path, folder in the run's artifacts)
            path, folder = item if isinstance(item, tuple) else (item, None)
            mlflow.log_artifact(str(path), artifact_path=folder)
        for name, frame in (tables or {}).items():
            mlflow.log_table(frame, artifact_file=name)
        for key, value in (parent or {}).items():
            if value is not None:
                client.log_metric(self.parent_id, key, float(value))
        trained = (model_run_id(client, *self.model) if on_model_run and self.model and Path(self.model[1]).is_dir()
                   else None)
        for key, value in numbers.items() if trained else ():
            client.log_metric(trained, key, value)


@contextmanager
def stage_run(cfg, run_name: str, *, role: str, inputs=(), outputs=(), sections=(), tags: dict | None = None,
              model: tuple[str, str] | None = None, iteration: int | None = None, prefix: str = "",
              datasets: dict | None = None, active: bool = True):
    """The MLflow run of one stage, under the run of its pipeline execution (one `dvc repro` or
    `dvc exp run`; :func:`execution`), yielding a :class:`StageRun` to :meth:`~StageRun.finish`.

    Every stage gets the same lineage: the tags of :func:`base_tags` for its ``inputs`` (git commit,
    DVC stage and experiment, each input's md5 from dvc.lock), ``humpback.role``, the model it
    trained or measured (``model``: name and folder; ``humpback.model``, and the iteration for m<i>),
    its ``outputs`` (a content digest when the stage ends; their DVC md5 once dvc.lock has it, filled
    in by the next stage of the same execution). Its params are the config ``sections`` it reads,
    under their params.yaml names (``curate.threshold``: the name the execution's run and `dvc exp
    show` use). ``datasets``: training data as MLflow dataset inputs. The run, and its parent, end
    FAILED if the stage raises."""
    if not active:
        yield StageRun(None, None, None, prefix)
        return
    import mlflow

    from humpback.io import flatten

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    exp_id = setup(cfg.mlflow.experiment)
    client = mlflow.MlflowClient()
    outputs = [str(o) for o in outputs]
    parent = parent_run_id(client, exp_id, cfg.as_written(), outputs)
    _backfill_output_hashes(client, exp_id, parent)
    all_tags = {**base_tags([str(i) for i in inputs]), "humpback.role": role, **(tags or {})}
    if model:
        all_tags["humpback.model"] = model[0]
        if iteration is None and model[0][1:].isdigit() and model[0].startswith("m"):
            iteration = int(model[0][1:])
    if iteration is not None:
        all_tags["humpback.iteration"] = str(iteration)
    if outputs:
        all_tags["humpback.outputs"] = ",".join(outputs)
    try:
        with mlflow.start_run(run_name=run_name, tags=all_tags, parent_run_id=parent) as run:
            params = {k: v for s in sections for k, v in flatten(_section(cfg, s), s).items()}
            _log_params(client, run.info.run_id, params)
            if datasets:
                log_datasets(datasets)
            yield StageRun(run.info.run_id, parent, model, prefix)
            for out in outputs:
                if Path(out).exists():
                    mlflow.set_tag(f"humpback.output_digest.{out}", dir_digest(out))
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    finally:
        mlflow.flush_async_logging()
    client.set_terminated(parent, "FINISHED")  # its end time moves on with every stage


def _backfill_output_hashes(client, experiment_id: str, parent: str) -> None:
    """DVC writes an output's md5 to dvc.lock after its stage: tag earlier stages of this execution."""
    siblings = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    for run in siblings:
        outs = [p for p in run.data.tags.get("humpback.outputs", "").split(",") if p]
        missing = [p for p in outs if f"dvc.output.{p}" not in run.data.tags]
        for path, md5 in dvc_out_hashes(missing).items():
            client.set_tag(run.info.run_id, f"dvc.output.{path}", md5)


def model_run_id(client, name: str, model_dir: str | Path) -> str | None:
    """The training run that produced exactly this checkpoint (same model name and content digest
    of its folder), if any."""
    import mlflow

    runs = client.search_runs(
        [mlflow.active_run().info.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`humpback.model` = '{name}' "
                      f"and tags.`humpback.output_digest.{model_dir}` = '{dir_digest(model_dir)}'")
    return runs[0].info.run_id if runs else None


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
    from humpback.io import flatten

    key, name = execution(outputs)
    found = client.search_runs([experiment_id], filter_string=f"tags.`humpback.execution` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    tags = {"humpback.execution": key, "humpback.role": "pipeline", "git.commit": git_commit() or "unknown",
            "dvc.exp": os.environ.get("DVC_EXP_NAME", "workspace")}
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    _log_params(client, run.info.run_id, flatten(params))
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

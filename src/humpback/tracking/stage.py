"""The MLflow run of one stage: :func:`stage_run` and :class:`StageRun`."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

from humpback.core.keys import path_md5
from humpback.tracking.config import MlflowConfig
from humpback.tracking.lineage import base_tags, dvc_out_hashes, log_params, parent_run_id
from humpback.tracking.store import setup

log = logging.getLogger(__name__)


def _numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a metrics mapping as dotted MLflow metric names (text, flags, lists
    and nulls are not metrics)."""
    from humpback.core.config import flatten

    return {f"{prefix}{k}": float(v) for k, v in flatten(metrics).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


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
            log_params(client, self.run_id, params)
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

    from humpback.core.config import flatten

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    exp_id = setup(MlflowConfig.model_validate(cfg.as_written().get("mlflow") or {}).experiment)
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
            log_params(client, run.info.run_id, params)
            if datasets:
                log_datasets(datasets)
            yield StageRun(run.info.run_id, parent, model, prefix)
            for out in outputs:
                if Path(out).exists():
                    mlflow.set_tag(f"humpback.output_digest.{out}", path_md5(out))
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
                      f"and tags.`humpback.output_digest.{model_dir}` = '{path_md5(model_dir)}'")
    return runs[0].info.run_id if runs else None


def log_datasets(datasets: dict[str, tuple[str, list[dict]]], context: str = "training") -> None:
    """Training data as MLflow dataset inputs: name, source path, size (rows) and a digest that is
    DVC's md5 of the path when dvc.lock has it (the same hash `dvc status` compares)."""
    import mlflow
    import pandas as pd

    hashes = dvc_out_hashes([path for path, _ in datasets.values()])
    for name, (path, rows) in datasets.items():
        frame = pd.DataFrame(rows, columns=["instruction", "response"])
        digest = (hashes.get(path) or path_md5(path))[:36]
        mlflow.log_input(mlflow.data.from_pandas(frame, source=path, name=name, digest=digest), context=context)
        mlflow.set_tag(f"humpback.data.{name}", f"{path} rows={len(rows)} md5={hashes.get(path, 'n/a')}")

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
from pathlib import Path

from humpback.core.files import atomic_write

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

    with atomic_write(path, replace=False) as tmp:
        store = SqlAlchemyStore(f"sqlite:///{tmp}", (project_root() / "mlartifacts").as_uri())
        store.engine.dispose()


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

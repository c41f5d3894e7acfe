"""MLflow glue: where the store is, which experiment, and the tags that tie a run to git and DVC.

The store is ``sqlite:///<project root>/mlflow.db`` unless MLFLOW_TRACKING_URI says otherwise. The
project root is DVC_ROOT when a stage runs under DVC (queued experiments run in a temp copy, but
DVC_ROOT points at the real repo), else the working directory. Artifacts go to
``<root>/mlartifacts``, fixed when the experiment is created.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def setup(experiment: str) -> str:
    """Point MLflow at the project's store and return the experiment id (created if missing)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        exp_id = found.experiment_id
    else:
        exp_id = mlflow.create_experiment(experiment, artifact_location=(project_root() / "mlartifacts").as_uri())
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


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


def dir_digest(path: str | Path) -> str:
    """A content hash of a file or directory (names and bytes), independent of DVC."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


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


@contextmanager
def stage_run(experiment: str, run_name: str, tags: dict[str, str]):
    """An MLflow run for one stage execution; it ends FAILED if the stage raises."""
    import mlflow

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    setup(experiment)
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        yield run
    mlflow.flush_async_logging()


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

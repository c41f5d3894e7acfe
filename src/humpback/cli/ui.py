"""`humpback ui`: the MLflow UI on the project's store, supervised."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from humpback.tracking.store import runs_page, tracking_uri


@click.command("ui")
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback by default: the UI has no login.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="Where mlflow.experiment is set (the default experiment, humpback, if the file is missing).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server worker processes. One serves one person and starts faster than MLflow's default 4.")
def ui_cmd(port, host, params_path, workers):
    """Open the MLflow UI on this project's store (mlflow.db, or MLFLOW_TRACKING_URI).

    The printed URL lands on the project's runs table: one parent run per pipeline execution, its
    stage runs beneath it.

    \b
    Example:
      humpback ui                 # then open the printed URL
      humpback ui --port 5001
    """
    import os

    from humpback.core.config import ConfigError
    from humpback.params import load_config
    from humpback.tracking.config import MlflowConfig

    uri = tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise click.ClickException(f"no MLflow store at {uri.removeprefix('sqlite:///')}: run `dvc repro` first "
                                   "(or set MLFLOW_TRACKING_URI)")
    try:
        experiment = load_config(params_path).mlflow.experiment if Path(params_path).exists() else MlflowConfig().experiment
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    page = runs_page(experiment) or ""
    click.echo(f"MLflow UI on {uri}: http://{host}:{port}/{page}  (Ctrl-C to stop)")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
           "--workers", str(workers)]
    sys.exit(_serve(cmd, {**os.environ, "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true"}))


def _serve(cmd: list[str], env: dict) -> int:
    """Run a server until it exits or we are told to stop (Ctrl-C, SIGTERM, SIGHUP); then stop it and
    everything it started. The MLflow UI spawns a web server, a job runner and queue consumers: they
    run in a new process group, which is signalled as a whole."""
    import signal
    import subprocess

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    # SIGINT too: a process started with SIGINT ignored (a background job of a script, a test runner
    # that ignores it) would otherwise never see Ctrl-C, and Python installs no handler of its own then
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(proc)


def _stop_group(proc, grace_s: float = 10.0) -> None:
    """SIGTERM to the process group of ``proc``, SIGKILL to what is left after ``grace_s``."""
    import os
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return  # nobody left in the group
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or it stays in the group as a zombie
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

"""The MLflow UI in a real browser: `humpback ui` serves the project's store on loopback, and
headless Chromium shows the comparison of M0..Mn with their win rates. Skipped without Chromium
(Debian: `apt-get install chromium`)."""

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from conftest import start_ui
from humpback.tracking.stage import stage_run

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
# xdist_group: one worker runs this file (its tests share one UI server)
pytestmark = [pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine"), pytest.mark.xdist_group("browser")]
WIN_RATES = {"m0": 50.0, "m1": 61.25, "m2": 67.75}


def _browser(*args: str, timeout: int = 90) -> str:
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--virtual-time-budget=20000", "--window-size=1400,900", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A store with one pipeline execution (parent) and the stage runs of M0..M2, served by `humpback ui`."""
    import mlflow

    from humpback.params import Config

    root = tmp_path_factory.mktemp("project")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "DVC_ROOT": str(root)}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        run_ids = []
        for model, rate in WIN_RATES.items():
            with stage_run(Config(), f"evaluate {model} vs m0", role="eval", prefix="eval.",
                                    tags={"humpback.model": model}) as run:
                run.finish({"win_rate": rate, "standard_error": 1.5})
                run_ids.append(mlflow.active_run().info.run_id)
        exp_id = mlflow.get_experiment_by_name("humpback").experiment_id
    finally:
        os.environ.clear()
        os.environ.update(old)
    proc, url, printed = start_ui(root, env)
    yield url, exp_id, run_ids, printed
    proc.terminate()
    proc.wait(timeout=30)


def test_ui_prints_its_url_and_serves_the_store(ui):
    url, exp_id, run_ids, _ = ui
    with urllib.request.urlopen(f"{url}/ajax-api/2.0/mlflow/runs/get?run_id={run_ids[1]}", timeout=10) as r:
        run = json.load(r)["run"]
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]}["eval.win_rate"] == 61.25


def test_browser_shows_the_win_rates_of_every_model_side_by_side(ui, tmp_path):
    url, exp_id, run_ids, _ = ui
    page = f"{url}/#/compare-runs?runs={json.dumps(run_ids)}&experiments={json.dumps([exp_id])}"
    dom = _browser("--dump-dom", page)
    assert "eval.win_rate" in dom, dom[-2000:]
    for model, rate in WIN_RATES.items():
        assert f"evaluate {model} vs m0" in dom
        assert f"{rate:g}" in dom
    shot = Path(os.environ.get("HUMPBACK_SCREENSHOT", tmp_path / "compare.png"))
    _browser(f"--screenshot={shot}", page)
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_the_printed_url_lands_on_the_project_runs(ui):
    """MLflow 3 opens an experiment on its GenAI overview ("No data available" for this project); the
    URL that `humpback ui` prints lands a newcomer on the runs table: the pipeline execution's parent
    run (named `manual` here, `dvc repro` or the experiment's name under DVC) with its stage runs."""
    import re

    url, exp_id, run_ids, printed = ui
    assert printed == f"{url}/#/experiments/{exp_id}/runs"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", _browser("--dump-dom", printed)))
    assert "Training runs" in text and "No data available" not in text, text[-1500:]
    assert re.search(r"Run Name .* manual ", text) and f"{len(run_ids) + 1} matching runs" in text, text[-1500:]

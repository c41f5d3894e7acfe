"""MLflow lineage that needs no model: which pipeline execution a stage belongs to, the params a
stage run logs, and the data-scaling fit."""

import ast
import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import BIN, ROOT, run_ok

STAGE = ("python -c \"import json, sys; from humpback.tracking.lineage import execution; "
         "json.dump(execution([sys.argv[1]]), open(sys.argv[1], 'w'))\"")


def test_one_dvc_repro_is_one_execution_and_the_next_is_another(tmp_path):
    """The key comes from DVC's own record of which `dvc` process holds a stage's outputs
    (.dvc/tmp/rwlock): every stage of one `dvc repro` shares it, the next `dvc repro` gets a new one."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("DVC_EXP_NAME", None)
    run_ok(["git", "init", "-q"], tmp_path, env)
    run_ok([str(BIN / "dvc"), "init", "-q"], tmp_path, env)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "a": {"cmd": f"{STAGE} a.json", "outs": ["a.json"]},
        "b": {"cmd": f"{STAGE} b.json", "deps": ["a.json"], "outs": ["b.json"]}}}))
    keys = []
    for _ in range(2):
        run_ok([str(BIN / "dvc"), "repro", "-f"], tmp_path, env)
        (a_key, a_name), (b_key, _) = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
        assert a_key == b_key and a_key.startswith("dvc-") and a_name == "dvc repro"
        keys.append(a_key)
    assert keys[0] != keys[1]
    by_hand = subprocess.run([sys.executable, "-c", "from humpback.tracking.lineage import execution; print(execution()[0])"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert by_hand.startswith("manual-")


def _sections_logged(script) -> set[str]:
    """The `sections=[...]` string literals a stage script passes to tracking.stage_run."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.keyword) and node.arg == "sections":
            found |= {n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return found


def test_a_stage_run_logs_every_param_dvc_tracks_for_the_stage():
    """The params DVC reruns a stage for are the params its MLflow run shows, under the same names
    (`vllm` is logged with the engine, where vLLM runs)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    checked = 0
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = ROOT / body["cmd"].split()[1]
        logged = _sections_logged(script)
        if not logged:
            continue  # a stage with no MLflow run (answer@m, the data stages)
        declared = {p for p in body.get("params", []) if p != "vllm"}
        missing = {p for p in declared if not any(p == s or p.startswith(f"{s}.") for s in logged)}
        assert not missing, f"{name}: dvc.yaml tracks {sorted(missing)} but {script.name} does not log them"
        checked += 1
    assert checked >= 8


def _scaling(tmp_path, sizes, points):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"scaling": {"sizes": sizes}}))
    metrics = tmp_path / "metrics"
    for kind in ("train", "eval"):
        (metrics / kind).mkdir(parents=True)
    for n, (pairs, win_rate) in points.items():
        (metrics / f"train/scaling_n{n}.json").write_text(json.dumps({
            "curated_pairs": pairs, "examples": pairs, "steps": 2, "final_loss": 1.0, "heldout": {"nll": 2.0}}))
        (metrics / f"eval/scaling_n{n}.json").write_text(json.dumps({"win_rate": win_rate, "standard_error": 1.0, "n_total": 6}))
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_TRACKING_URI", "DVC_STAGE")}
    return subprocess.run([sys.executable, str(ROOT / "pipeline/scaling.py"), "--metrics-dir", str(metrics),
                           "--out", str(tmp_path / "scaling.json")], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_the_scaling_fit_reads_each_size_and_leaves_out_sizes_the_curated_set_cannot_fill(tmp_path):
    proc = _scaling(tmp_path, [2, 4, 8], {2: (2, 40.0), 4: (4, 50.0), 8: (5, 90.0)})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "scaling.json").read_text())
    assert [p["n"] for p in summary["points"]] == [2, 4] and summary["skipped_sizes"] == [8]
    assert summary["alpha"] == pytest.approx(10 / 0.6931, abs=1e-3) and summary["points"][0]["heldout_nll"] == 2.0
    assert "left out of the fit" in proc.stderr


def test_the_scaling_fit_names_a_missing_size(tmp_path):
    proc = _scaling(tmp_path, [2, 4], {2: (2, 40.0)})
    assert proc.returncode == 1 and "scaling size 4:" in proc.stderr and "eval/scaling_n4.json" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_scaling_point_is_a_forward_model_on_the_scaling_set_only(tmp_path):
    """--scaling-size picks its own curated set: with --curated or as a backward model it is a usage
    error, before any model is loaded."""
    for d in ("base", "seed", "cur"):
        (tmp_path / d).mkdir()
    for extra in (["--role", "forward", "--curated", "cur"], ["--role", "backward"]):
        proc = subprocess.run([sys.executable, str(ROOT / "pipeline/train.py"), "--params", str(ROOT / "params.yaml"),
                               "--name", "scaling_n2", "--scaling-size", "2", "--base", "base", "--seed-data", "seed",
                               "--out", "out", *extra], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 2 and "--scaling-size trains a forward model" in proc.stderr, proc.stderr
        assert not (tmp_path / "out").exists()


def test_a_stage_killed_while_it_creates_the_store_leaves_no_broken_store(tmp_path):
    """Regression: a stage SIGKILLed while MLflow migrated a new mlflow.db left it half-migrated, and
    every later stage failed on it. Now the store appears under its name only once complete."""
    import time

    import mlflow

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["DVC_ROOT"] = str(tmp_path)
    setup = [sys.executable, "-c", "from humpback.tracking.store import setup; setup('humpback')"]
    proc = subprocess.Popen(setup, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "mlflow.db"
    while (not db.exists() or db.stat().st_size < 300_000) and proc.poll() is None:
        time.sleep(0.002)
    proc.kill()  # a third of the way to a full store (about 900 KB): before the fix, mid-migration
    proc.wait()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".mlflow.db.tmp")] in ([], [f".mlflow.db.tmp-{proc.pid}"])
    done = subprocess.run(setup, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("humpback")
    run = client.create_run(exp.experiment_id)
    client.log_param(run.info.run_id, "x", 1)
    assert client.get_run(run.info.run_id).data.params == {"x": "1"}

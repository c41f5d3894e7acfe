"""An API key stays secret: the OpenAI-compatible judge reads it from the environment variable named
in params, and it appears in no params file, log line, metrics file, verdict cache, MLflow store or
MLflow artifact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from _fake_openai import FakeOpenAI
from conftest import ROOT

KEY = "sk-humpback-SECRET-5f0c1e9d7a"


def _ranks_m1_first(body):
    """AlpacaEval 1.0's annotator format: m1's answer ranks first, wherever the prompt shows it."""
    text = "\n".join(m["content"] for m in body["messages"])
    first, second = (1, 2) if text.index("m1 says") < text.index("m0 says") else (2, 1)
    return {"content": f"[{{'model': 'model_1', 'rank': {first}}}, {{'model': 'model_2', 'rank': {second}}}]"}


@pytest.mark.parametrize("kind", ["openai", "alpaca_eval"])
def test_the_judges_key_is_nowhere_but_in_the_request(tmp_path, kind):
    script = ["A", "B", "500", "A", "B", "A"] if kind == "openai" else [_ranks_m1_first] * 3
    server = FakeOpenAI(script, key=KEY)
    try:
        (tmp_path / "data/demo").mkdir(parents=True)
        shutil.copy(ROOT / "data/demo/eval.jsonl", tmp_path / "data/demo/eval.jsonl")
        params = {"evaluate": {"set": {"max_prompts": 3}, "reference": "m0",
                               "judge": {"kind": kind, "openai": {"base_url": server.url, "model": "judge-1",
                                                                  "api_key_env": "HUMPBACK_SECRET_TEST",
                                                                  "concurrency": 1, "max_retries": 2},
                                         "alpaca_eval": {"annotator": "alpaca_eval_gpt4", "model": "judge-1"}}}}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        env = {**os.environ, "HUMPBACK_SECRET_TEST": KEY, "DVC_ROOT": str(tmp_path),
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
        logs = []

        def run(*args):
            proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300)
            logs.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0, logs[-1]

        run(str(ROOT / "pipeline/eval_set.py"))
        rows = json.loads((tmp_path / "data/eval/set/prompts.json").read_text())
        for model in ("m0", "m1"):
            outputs = [{"instruction": r["instruction"], "output": f"{model} says {i}", "generator": model,
                        "dataset": r["dataset"]} for i, r in enumerate(rows)]
            (tmp_path / f"data/eval/answers/{model}.json").write_text(json.dumps(outputs))
        run(str(ROOT / "pipeline/evaluate.py"), "--name", "m1", "--no-progress")
    finally:
        server.close()

    assert {r["auth"] for r in server.requests} == {f"Bearer {KEY}"}  # the key did reach the endpoint
    metrics = json.loads((tmp_path / "metrics/eval/m1.json").read_text())
    assert metrics["n_total"] == 3 and metrics["failed"] == 0
    if kind == "alpaca_eval":  # AlpacaEval's protocol: one verdict per pair, its cache in the stage's folder
        assert len(server.requests) == 3 and metrics["n_wins"] == 3 and metrics["judge"] == "alpaca_eval"
        assert (tmp_path / "data/eval/judged/m1/alpaca_eval_annotations.json").is_file()
    assert not any(KEY in log for log in logs)
    leaked = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
              if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == []
    assert (tmp_path / "mlflow.db").stat().st_size > 0 and list((tmp_path / "mlartifacts").rglob("annotations.json"))

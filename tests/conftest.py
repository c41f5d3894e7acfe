"""Shared fixtures: a tiny random Llama with the demo tokenizer, built once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
BIN = Path(sys.executable).parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # fail fast instead of waiting on a network that is not there
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _tracking_uri_left_as_found():
    """mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI, which every later test's subprocesses
    (dvc repro, stages) would inherit, sending their runs to another store: no test may leave it."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    after = os.environ.get("MLFLOW_TRACKING_URI")
    if after != before:
        os.environ.pop("MLFLOW_TRACKING_URI", None) if before is None else os.environ.update(MLFLOW_TRACKING_URI=before)
        pytest.fail(f"the test left MLFLOW_TRACKING_URI={after} (was {before}): use MlflowClient(tracking_uri=...)")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from humpback.models.config import ModelConfig, TinyRandom
    from humpback.models.loading import load_base_model, save_checkpoint

    out = tmp_path_factory.mktemp("tiny-model")
    model, tok = load_base_model(ModelConfig(tiny_random=TinyRandom(hidden_size=32, intermediate_size=64)))
    save_checkpoint(model, tok, out)
    return out


@pytest.fixture(scope="session")
def vllm_model_dir(tmp_path_factory):
    """A tiny random Llama that vLLM's CPU kernels take (head size 32), with weights drawn wide enough
    that greedy decoding varies with the prompt (the default init gives near-uniform logits)."""
    import torch

    from humpback.models.config import ModelConfig, TinyRandom
    from humpback.models.loading import load_base_model, save_checkpoint

    model, tok = load_base_model(ModelConfig(tiny_random=TinyRandom(hidden_size=64, num_heads=2, num_kv_heads=1,
                                                                    intermediate_size=128)))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    out = tmp_path_factory.mktemp("vllm-model")
    save_checkpoint(model, tok, out)
    return out


def copy_project(dest: Path) -> dict[str, str]:
    """Copy the project's files into ``dest`` as a fresh clone has them (git-tracked and not ignored),
    make it a git repo with one commit, and return the environment to run dvc and humpback there."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(args, cwd=dest, env=env, check=True, capture_output=True)
    return env


def run_ok(args, cwd, env, timeout=600) -> str:
    """Run a command; fail the test with its output if it fails; return stdout + stderr."""
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(root: Path, env: dict[str, str], timeout_s: float = 120, preexec_fn=None):
    """`humpback ui` on a free loopback port in ``root``; returns (process, server URL, the URL it
    printed for the user) once /health answers."""
    import re
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "humpback.cli.main", "ui", "--port", str(port)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn)
    url = f"http://127.0.0.1:{port}"
    printed = None
    for _ in range(50):  # warnings may come first (stderr shares the pipe)
        line = proc.stdout.readline()
        printed = re.search(r"MLflow UI on .*?(http://\S+)", line)
        if printed or not line:
            break
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                return proc, url, printed.group(1) if printed else None
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(1)
    proc.kill()
    pytest.fail(f"the MLflow UI did not come up: {proc.stdout.read()}")

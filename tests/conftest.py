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
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Under pytest-xdist every worker, and every stage it starts, computes on its own share of the
    # cores: without it, torch's threads on each worker fight over all of them.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))


def pytest_collection_modifyitems(config, items):
    """The DVC-level tests (tests/e2e/) last: the smoke build they share starts in the background as
    the session starts (:func:`pytest_collection_finish`), so the workers run the unit tests
    meanwhile instead of waiting for it."""
    items.sort(key=lambda item: 1 if "/e2e/" in str(item.path) else 0)


def _build_root(config) -> Path:
    root = config._tmp_path_factory.getbasetemp()  # the tmp_path_factory fixture's object, before any fixture runs
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def pytest_collection_finish(session):
    """Start the smoke build at once, in a thread of one process (the first xdist worker), where
    any collected test needs it; the fixture waits for it on the build's file lock."""
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0" or not any(
            "smoke_build" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    import threading

    threading.Thread(target=_smoke_build, args=(_build_root(session.config),), name="smoke-build", daemon=True).start()


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


@pytest.fixture
def fake_server():
    """start(script) -> a :class:`FakeOpenAI` on loopback, closed after the test."""
    from _fake_openai import FakeOpenAI

    servers = []

    def start(script, **kwargs):
        servers.append(FakeOpenAI(script, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


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


def project_env() -> dict[str, str]:
    """The environment to run dvc, git and humpback in a copy of the project."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def copy_project(dest: Path) -> dict[str, str]:
    """Copy the project's files into ``dest`` as a fresh clone has them (git-tracked and not ignored),
    make it a git repo with one commit, and return the environment to run dvc and humpback there."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    env = project_env()
    for args in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(args, cwd=dest, env=env, check=True, capture_output=True)
    return env


def _smoke_build(root: Path) -> tuple[Path, str]:
    """The project as a fresh clone has it, on the smoke profile, after one whole `dvc repro`:
    built once per test session under ``root`` (shared by every xdist worker: the first builds it
    under a file lock, the others wait and reuse it). Returns its folder and the repro's log."""
    from filelock import FileLock

    dest, done = root / "smoke-build", root / "smoke-build.log"
    with FileLock(str(root / "smoke-build.lock")):
        if not done.exists():
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            env = copy_project(dest)
            shutil.rmtree(dest / "metrics")  # start as if no stage ever ran
            (dest / "dvc.lock").unlink()
            run_ok([str(BIN / "humpback"), "profile", "apply", "smoke"], dest, env)
            run_ok(["git", "add", "-A"], dest, env)
            run_ok(["git", "commit", "-qm", "smoke profile"], dest, env)
            log = run_ok([str(BIN / "dvc"), "repro"], dest, env, timeout=1800)
            done.write_text(log)
    return dest, done.read_text()


@pytest.fixture(scope="session")
def smoke_build(request):
    """(folder, env, log) of the one smoke build of the session: read it, never change it (the
    tests that run anything get their own copy, :func:`smoke_repo`)."""
    dest, log = _smoke_build(_build_root(request.config))  # every worker's basetemp sits in one folder
    return dest, project_env(), log


@pytest.fixture
def smoke_repo(smoke_build, tmp_path):
    """A copy of the smoke build of this test's own, so no DVC-level test depends on another's order.
    A copy keeps DVC's hard links between workspace and cache, git, the MLflow store and the
    metrics; about 0.1 s. (The MLflow experiment's artifact location stays the build's folder.)"""
    built, env, log = smoke_build
    dest = tmp_path / "smoke-repo"
    subprocess.run(["cp", "-a", str(built), str(dest)], check=True)
    return dest, env, log


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

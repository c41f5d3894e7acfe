"""The GPU check: the smoke profile's whole `dvc repro` on this machine's accelerator, then a
training killed after its first checkpoint and resumed by `dvc repro`.

    python benchmarks/gpu_check.py                      # a fresh copy of the project, smoke profile
    python benchmarks/gpu_check.py --repo DIR --allow-cpu   # an already built smoke repo (the suite's form)

The smoke profile runs every stage with the hf engine (precision auto: bf16 where the GPU has it),
the logits scorer (score@i) and the local judge (evaluate@m) on a tiny random model: minutes of GPU
time, most of it starting Python. Writes benchmarks/results/gpu-check-<device>.json (--out) with the
device, the time of each phase, the precision the trainings used, and whether the resumed training
ended with the same bytes as the uninterrupted one (on a GPU, non-deterministic kernels may make it
differ: recorded, not failed). Exits 1 where a step failed. Run it whenever a GPU is at hand and
commit the result; the test suite runs it on CPU against the repository its DVC tests build.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECKPOINT_DONE = ".humpback/train/m0-*/checkpoint-*/humpback-complete"


def _run(args: list[str], cwd: Path, env: dict, timeout: float = 900) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def environment() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "gpu-check", "GIT_AUTHOR_EMAIL": "gpu@check", "GIT_COMMITTER_NAME": "gpu-check",
            "GIT_COMMITTER_EMAIL": "gpu@check"}


def fresh_smoke_repo(dest: Path, env: dict) -> None:
    """The project's tracked files in ``dest``, as a git repo on the smoke profile, nothing run yet."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    shutil.rmtree(dest / "metrics", ignore_errors=True)
    (dest / "dvc.lock").unlink(missing_ok=True)
    _run(["git", "init", "-q"], dest, env)
    _run([str(BIN / "humpback"), "profile", "apply", "smoke"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "smoke profile"], dest, env)


def _files(root: Path, paths: list[str]) -> dict[str, bytes]:
    found = {}
    for rel in paths:
        p = root / rel
        for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []):
            if f.is_file():
                found[str(f.relative_to(root))] = f.read_bytes()
    return found


def kill_and_resume(repo: Path, env: dict) -> dict:
    """SIGKILL train_m0 once its first checkpoint is complete, then `dvc repro -f -s train_m0`: the
    log must say it resumed; returns from which step, and whether the bytes equal the first run's."""
    import yaml

    cmd = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train_m0"]["cmd"]
    paths = ["models/m0", "metrics/train/m0.json"]
    before = _files(repo, paths)
    shutil.rmtree(repo / "models/m0")
    proc = subprocess.Popen(cmd, shell=True, cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not list(repo.glob(CHECKPOINT_DONE)):
        time.sleep(0.01)
    if proc.poll() is not None:
        raise RuntimeError("train_m0 ended before its first checkpoint: the profile needs max_steps > checkpoint_steps")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # -f -s: train it, where a plain repro would check the earlier run's identical outputs out of the cache
    log = _run([str(BIN / "dvc"), "repro", "-f", "-s", "train_m0"], repo, env)
    resumed = re.search(r"m0: resuming from \S+checkpoint-(\d+) \(step \d+ of (\d+)\)", log)
    if not resumed:
        raise RuntimeError(f"train_m0 did not resume from its checkpoint:\n{log[-3000:]}")
    after = _files(repo, paths)
    return {"resumed_from_step": int(resumed.group(1)), "of_steps": int(resumed.group(2)),
            "same_bytes_as_uninterrupted": after == before,
            "checkpoints_left": len(list(repo.glob(".humpback/train/m0-*")))}


def check(repo: Path, env: dict) -> dict:
    """`dvc repro` to the end (timed), what ran on which precision, then the kill-and-resume."""
    import torch

    from humpback.models.device import bf16_supported

    result: dict = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                    "cuda": torch.cuda.is_available(), "native_bf16": bf16_supported()}
    start = time.perf_counter()
    log = _run([str(BIN / "dvc"), "repro"], repo, env)
    result["repro_s"] = round(time.perf_counter() - start, 1)
    result["stages_run"] = len(re.findall(r"Running stage '", log))
    metrics = repo / "metrics"
    result["train_precision"] = {p.stem: json.loads(p.read_text())["precision"]
                                 for p in sorted((metrics / "train").glob("m*.json"))}
    result["curator_auc"] = {p.stem: json.loads(p.read_text()).get("curator_check", {}).get("auc")
                             for p in sorted((metrics / "score").glob("iter*.json"))}
    result["judged"] = {p.stem: json.loads(p.read_text()).get("judge") for p in sorted((metrics / "eval").glob("*.json"))}
    start = time.perf_counter()
    result["resume"] = kill_and_resume(repo, env)
    result["resume_s"] = round(time.perf_counter() - start, 1)
    status = json.loads(_run([str(BIN / "dvc"), "status", "--json"], repo, env))
    result["up_to_date_after_resume"] = status == {}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, help="an existing smoke-profile repo (default: a fresh copy of this project)")
    parser.add_argument("--out", type=Path, help="result JSON (default: benchmarks/results/gpu-check-<device>.json)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (the test suite's form)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("error: no CUDA device here (pass --allow-cpu to run the check on CPU)", file=sys.stderr)
        return 2
    env = environment()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="humpback-gpu-check-") as tmp:
        repo = args.repo
        if repo is None:
            repo = Path(tmp)
            fresh_smoke_repo(repo, env)
        try:
            result = check(repo.resolve(), env)
            ok = result["up_to_date_after_resume"] and result["resume"]["checkpoints_left"] == 0
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            result, ok = {"error": str(exc)}, False
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["ok"] = bool(ok)
    name = re.sub(r"[^a-z0-9]+", "-", result.get("device", "unknown").lower()).strip("-")
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu-check-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""How long a stage that loads no model takes to start, side by side with another revision of the
project in the same run (ratios, not absolute seconds: the machine is shared).

    python benchmarks/stage_start.py                  # this checkout alone
    python benchmarks/stage_start.py --before 64f00c5 # and that revision, from a git worktree

"Start" is what every run of the stage pays before it works: the interpreter, the imports of its
script (ours and its libraries'), and the whole-file params check (``humpback.params.load_config``;
for ``--before``, a revision from before the reshaping, ``humpback.config.load_config``). MLflow's
own import follows when the stage opens its run: reported apart, as ``mlflow_import_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("select_pairs", "eval_set", "report", "scaling")
# A stage's start: its script's imports (ours and its libraries') and the whole-file params check.
PROBE = ("import sys; sys.path.insert(0, 'pipeline'); import {script}; "
         "from humpback.{config} import load_config; load_config('params.yaml')")


def start_s(root: Path, script: str, config: str, repeat: int, env: dict | None = None) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", PROBE.format(script=script, config=config)], cwd=root, env=env,
                       capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def mlflow_s(root: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mlflow"], cwd=root, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="a git revision to measure beside this checkout")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from _machine import cpu_flags, cpu_name

    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "flags": cpu_flags(),
              "now": {s: round(start_s(ROOT, s, "params", args.repeat), 2) for s in SCRIPTS},
              "mlflow_import_s": round(mlflow_s(ROOT), 2)}
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            wt = Path(tmp) / "before"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(wt), args.before], cwd=ROOT, check=True)
            env = {**os.environ, "PYTHONPATH": str(wt / "src")}  # the old package ahead of the installed one
            try:
                result["before"] = {s: round(start_s(wt, s, "config", args.repeat, env), 2) for s in SCRIPTS}
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, check=True)
        result["ratio_before_over_now"] = {s: round(result["before"][s] / result["now"][s], 2) for s in SCRIPTS}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

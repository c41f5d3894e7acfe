"""What keying a model costs a stage when it starts: a 1 GB model folder, side by side in one run
(ratios, not absolute seconds: the machine is shared).

    python benchmarks/model_key.py                       # before = bcc156f's dir_digest
    python benchmarks/model_key.py --size-mb 4096 --before REV

A generating stage keys its shards (or verdicts, or checkpoints) on the model it reads. Before,
the project hashed every byte of the folder itself (sha256, ``core/keys.dir_digest`` of REV). Now
the key is DVC's md5 (``core.keys.path_md5``), read from DVC's state when DVC has hashed the folder
(every model a stage reads is an output DVC has recorded), and computed once (then remembered in
that state) when it has not. Each row is a fresh interpreter that imports the key function and keys
the folder, as a stage does; the folder's files are in the page cache for every row (no disk reads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROBE = "import sys; sys.path.insert(0, {path!r}); from {module} import {fn}; print({fn}({folder!r}))"


def timed(code: str, cwd: Path, repeat: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="bcc156f", help="a revision whose core/keys.py has dir_digest")
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _machine import cpu_name

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        old.mkdir()
        (old / "old_keys.py").write_text(subprocess.run(
            ["git", "show", f"{args.before}:src/humpback/core/keys.py"], cwd=ROOT, capture_output=True,
            text=True, check=True).stdout)
        repo = tmp / "repo"
        (repo / "models").mkdir(parents=True)
        half = args.size_mb // 2
        # two shards and a config, like a checkpoint; written by a DVC stage so DVC records the folder
        cmd = (f"mkdir -p models/m && head -c {half}M /dev/urandom > models/m/model-1.safetensors && "
               f"head -c {half}M /dev/urandom > models/m/model-2.safetensors && echo '{{}}' > models/m/config.json")
        (repo / "dvc.yaml").write_text(json.dumps({"stages": {"train": {"cmd": cmd, "outs": ["models/m"]}}}))
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        for c in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"], [str(BIN / "dvc"), "repro", "-q"]):
            subprocess.run(c, cwd=repo, env=env, check=True, capture_output=True)
        folder = str(repo / "models/m")
        fresh = repo / "models/unhashed"  # the same bytes where DVC has hashed nothing yet
        rows = {}
        rows["before: sha256 of every byte (dir_digest)"] = timed(
            PROBE.format(path=str(old), module="old_keys", fn="dir_digest", folder=folder), repo, args.repeat)
        rows["now: DVC's md5, from DVC's state (path_md5)"] = timed(
            PROBE.format(path=str(ROOT / "src"), module="humpback.core.keys", fn="path_md5", folder=folder),
            repo, args.repeat)
        first = []
        for _ in range(args.repeat):  # a new copy each time, so each run hashes it the first time
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.copytree(folder, fresh)
            first.append(timed(PROBE.format(path=str(ROOT / "src"), module="humpback.core.keys", fn="path_md5",
                                            folder=str(fresh)), repo, 1))
        rows["now: a folder DVC has not hashed (path_md5, once)"] = (statistics.median(t for t, _ in first),
                                                                      first[0][1])
        rows["for scale: the interpreter and the imports alone (no key)"] = timed(
            f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); import humpback.core.keys; "
            "import dvc_data.hashfile.build, dvc.repo", repo, args.repeat)
    base = next(iter(rows.values()))[0]
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "folder_mb": args.size_mb, "before": args.before,
              "rows": {name: {"s": round(t, 3), "ratio_to_before": round(base / t, 1), "key": key}
                       for name, (t, key) in rows.items()}}
    print(f"| keying a {args.size_mb} MB model folder, fresh interpreter | seconds | speed-up |")
    print("| --- | --- | --- |")
    for name, row in result["rows"].items():
        print(f"| {name} | {row['s']} | {row['ratio_to_before']}x |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

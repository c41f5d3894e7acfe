"""How long a newcomer's first run takes: `make demo` on a fresh clone, timed per stage.

    python benchmarks/demo_time.py [--repo .] [--out benchmarks/results/demo-<cpu>.json]

Clones the repository's committed HEAD into a temporary folder (no .venv, no DVC cache, no data: what
a new user has), runs `make demo` there and stamps every output line: the install (until `dvc repro`
starts), every stage (from its "Running stage" line to the next), `humpback metrics` at the end, and
the total wall time. Prints one table with the machine's CPU, its flags that matter for speed
(AVX2, AVX-512, AVX-512 BF16, AMX) and its measured fp32 matmul speed, and writes it as JSON.
Run it on an otherwise idle machine: other work on the cores shows up in every row. Package
downloads come from your pip/uv cache where it has them, as they would for a user who installed
Python packages before.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from _machine import cpu_flags, cpu_name, matmul_gflops

ROOT = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"^Running stage '([^']+)'")
CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def timed_lines(cmd: list[str], cwd: Path, env: dict) -> tuple[int, list[tuple[float, str]]]:
    """Run ``cmd``, echoing its output; (exit code, [(seconds since start, line)])."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append((time.monotonic() - start, line.rstrip("\n")))
        sys.stderr.write(line)
    return proc.wait(), lines + [(time.monotonic() - start, "")]


def phases(lines: list[tuple[float, str]]) -> list[dict]:
    """Install, one row per stage, the closing `humpback metrics`: each with its seconds."""
    marks = [("install", 0.0)]
    for t, line in lines:
        if m := STAGE.match(line):
            marks.append((m.group(1), t))
        elif line.strip() == "humpback metrics":
            marks.append(("humpback metrics", t))
    ends = [t for _, t in marks[1:]] + [lines[-1][0]]
    return [{"phase": name, "seconds": round(end - begin, 1)} for (name, begin), end in zip(marks, ends)]


@click.command(help=__doc__)
@click.option("--repo", default=str(ROOT), show_default=True, help="The repository to clone (its HEAD).")
@click.option("--out", default=None, help="Write the table as JSON here.")
@click.option("--keep", is_flag=True, help="Keep the clone (printed) instead of deleting it.")
def main(repo, out, keep):
    work = Path(tempfile.mkdtemp(prefix="humpback-demo-"))
    clone = work / "humpback"
    subprocess.run(["git", "clone", "--quiet", repo, str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    # a shell that never saw this project: no virtual environment, no MLflow or DVC settings of ours
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    code, lines = timed_lines(["make", "demo"], clone, env)
    if code:
        raise click.ClickException(f"make demo failed (exit {code}) in {clone}; the last lines are above")
    rows = phases(lines)
    total = lines[-1][0]
    gflops = matmul_gflops("float32")
    hw = {"cpu": cpu_name(), "cores": os.cpu_count(), "flags": cpu_flags(), "matmul_gflops_fp32": round(gflops, 1),
          # torch's kernels capped below what the CPU has (an AVX-512 machine run as an AVX2 one)
          "kernel_caps": {k: os.environ[k] for k in CAPS if k in os.environ}}
    click.echo(f"\n`make demo` on a fresh clone ({commit}): {hw['cpu']}, {hw['cores']} cores, "
               f"{' '.join(hw['flags']) or 'no AVX2'}, fp32 matmul {gflops:.0f} GFLOP/s\n")
    click.echo("| phase | seconds | share |\n| --- | --- | --- |")
    for r in rows:
        click.echo(f"| {r['phase']} | {r['seconds']:.0f} | {r['seconds'] / total:.0%} |")
    click.echo(f"| **total** | **{total:.0f}** ({total / 60:.1f} min) | |")
    if out:
        Path(out).write_text(json.dumps({"hardware": hw, "commit": commit, "total_seconds": round(total, 1),
                                         "phases": rows}, indent=2) + "\n")
    if keep:
        click.echo(f"clone kept in {clone}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What the backward model's training budget buys: M_yx recipes side by side in one run, each
trained by the train stage and then writing the demo's instructions through the augment stage.

    python benchmarks/backward_recipe.py                   # the recipes below, on the demo's data
    python benchmarks/backward_recipe.py --out benchmarks/results/backward-recipe-cpu.json

Needs `dvc repro corpus seed base_model` first (the demo's inputs). Each recipe is a
`train_backward` section (the keys of `train` that M_yx takes instead); the stage scripts run as
`dvc repro` runs them, into a temporary folder, with MLflow in a throwaway store. Per recipe: the
train stage's seconds (start, steps, held-out scoring), the augment stage's seconds, M_yx's held-out
NLL, and what it wrote: the `well_formed` share of the candidates and of all segments
(augment/form.py). Seconds are comparable within one run only (the machine is shared).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml
from _machine import cpu_flags, cpu_name

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {  # name: train_backward
    "1 step, 5e-5 (the forward models' recipe)": {"max_steps": 1, "learning_rate": 5.0e-5, "final_learning_rate": 4.5e-5},
    "5 steps, 4e-4": {"max_steps": 5, "learning_rate": 4.0e-4, "final_learning_rate": 4.0e-5},
    "6 steps, 3e-4": {"max_steps": 6, "learning_rate": 3.0e-4, "final_learning_rate": 3.0e-5},
    "8 steps, 2e-4": {"max_steps": 8, "learning_rate": 2.0e-4, "final_learning_rate": 2.0e-5},
    "8 steps of 2 examples, 3e-4": {"max_steps": 8, "learning_rate": 3.0e-4, "final_learning_rate": 3.0e-5,
                                    "small_data_batch_size": 2, "micro_batch_size": 2},
    "LoRA r16, 5 steps, 2e-3": {"method": "lora", "max_steps": 5, "learning_rate": 2.0e-3, "final_learning_rate": 2.0e-4},
}


def run_recipe(overrides: dict, folder: Path, env: dict) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train_backward"] = overrides
    folder.mkdir()
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    py, p = sys.executable, str(folder / "params.yaml")
    t0 = time.perf_counter()
    subprocess.run([py, "pipeline/train.py", "--params", p, "--role", "backward", "--name", "backward",
                    "--out", str(folder / "backward"), "--metrics", str(folder / "train.json")],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    t1 = time.perf_counter()
    subprocess.run([py, "pipeline/augment.py", "--params", p, "--model", str(folder / "backward"), "--out",
                    str(folder / "candidates"), "--metrics", str(folder / "augment.json"), "--no-progress"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    t2 = time.perf_counter()
    trained, augmented = (json.loads((folder / f).read_text()) for f in ("train.json", "augment.json"))
    return {"train_backward": overrides, "train_s": round(t1 - t0, 1), "augment_s": round(t2 - t1, 1),
            "heldout_nll": trained["heldout"]["nll"], "final_loss": trained["final_loss"],
            "candidates": augmented["candidates"], "segments": augmented["segments"],
            "well_formed": augmented["well_formed"], "well_formed_of_segments": augmented["well_formed_of_segments"],
            "dropped": {k: v for k, v in augmented["dropped"].items() if v}}


@click.command(help=__doc__)
@click.option("--only", multiple=True, help="Run only the recipes whose name contains this text.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the results as JSON here.")
def main(only, out):
    for needed in ("data/corpus", "data/seed", "models/base"):
        if not (ROOT / needed).is_dir():
            raise click.ClickException(f"{needed} is missing: run `dvc repro corpus seed base_model` first")
    recipes = {n: r for n, r in RECIPES.items() if not only or any(o in n for o in only)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        for index, (name, overrides) in enumerate(recipes.items()):
            results[name] = run_recipe(overrides, Path(tmp) / f"recipe-{index}", env)
            r = results[name]
            click.echo(f"{name}: train {r['train_s']} s, augment {r['augment_s']} s, held-out NLL {r['heldout_nll']}, "
                       f"well-formed {r['well_formed']} of candidates, {r['well_formed_of_segments']} of segments",
                       err=True)
    click.echo("| M_yx recipe (train_backward) | train_backward s | augment s | held-out NLL | well-formed: "
               "candidates | of segments |")
    click.echo("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        click.echo(f"| {name} | {r['train_s']} | {r['augment_s']} | {r['heldout_nll']} | {r['well_formed']} | "
                   f"{r['well_formed_of_segments']} |")
    if out:
        Path(out).write_text(json.dumps({"cpu": cpu_name(), "flags": cpu_flags(), "cores": os.cpu_count(),
                                         "kernel_caps": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY",
                                                         "ONEDNN_MAX_CPU_ISA") if k in os.environ},
                                         "recipes": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Stage `scaling` (optional): the paper's data-efficiency analysis (§3.3, Fig. 4, Table 3).

\b
    dvc exp run -S scaling.enabled=true -S 'scaling.sizes=[100,200,400,800]'
    python pipeline/scaling.py --out data/scaling --metrics metrics/scaling.json

For each N in `scaling.sizes`, train a model from the base on N pairs of the curated set A_k^(i)
(nested subsets in a seeded order; with `scaling.with_seed` plus the seed pairs), answer the eval
set, judge against the reference, and fit win rate = alpha * ln N + C (the paper does not state the
log base; we use the natural log). alpha is the data-efficiency number of the paper's Table 3.
Off by default (`scaling.enabled: false`, it trains one model per size): then it only records that.
Each finished size is kept in data/scaling/n<N>/ with a key of its inputs, so a rerun or a crash
resumes with the sizes still missing.
"""

import hashlib
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path

import click
import mlflow
import pyarrow.parquet as pq

from _common import load_params, params_option, run_stage
from humpback import tracking
from humpback.config import DistributedConfig
from humpback.data.shards import read_table
from humpback.eval_sets import read_outputs
from humpback.io import dir_digest, seeded_order, write_json
from humpback.prompts import read_template

log = logging.getLogger("humpback.scaling")


def fit_log_curve(points: list[dict]) -> dict:
    """Least squares of win rate on ln N: alpha (slope), its standard error, C and r^2."""
    from scipy.stats import linregress

    pts = [(math.log(p["n"]), p["win_rate"]) for p in points if p.get("win_rate") is not None]
    if len(pts) < 2:
        return {"alpha": None}
    fit = linregress(*zip(*pts))
    stderr = fit.stderr if len(pts) > 2 else None
    return {"alpha": round(fit.slope, 4), "alpha_stderr": None if stderr is None else round(stderr, 4),
            "intercept": round(fit.intercept, 4), "r2": round(fit.rvalue ** 2, 4) if len(pts) > 2 else None}


@click.command(help=__doc__)
@params_option
@click.option("--out", default="data/scaling", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default="metrics/scaling.json", show_default=True)
@click.option("--progress/--no-progress", default=True)
def main(params_path, out, metrics_path, progress):
    cfg = load_params(params_path)
    sc, ev = cfg.scaling, cfg.evaluate
    if not sc.enabled:
        shutil.rmtree(out, ignore_errors=True)
        # never an empty output folder: DVC (and git) cannot restore an empty directory
        write_json(Path(out) / "summary.json", {"enabled": False})
        write_json(metrics_path, {"enabled": False})
        log.info("scaling: off (scaling.enabled: false)")
        return
    # the model stack is imported only when there is work: a disabled stage costs a second, not ten
    from humpback.evaluate import answer, eval_metrics, judge_pairs
    from humpback.judges import judge_identity, make_judge
    from humpback.models.generation import EngineSpec
    from humpback.models.training import forward_examples, train

    iteration = sc.iteration or max(cfg.iterations)
    curated = read_table(f"data/curated/iter{iteration}", ["id", "instruction", "response"]).to_pylist()
    curated = seeded_order(curated, cfg.curate.sample_seed)
    seed = (pq.read_table("data/seed/train.parquet", columns=["instruction", "response"]).to_pylist()
            if sc.with_seed else [])  # the training split only: held-out pairs stay out, as in train.py
    rows = json.loads(Path("data/eval/set/prompts.json").read_text(encoding="utf-8"))
    references = read_outputs(f"data/eval/answers/{ev.reference}.json", rows)
    template = read_template("judge", ev.judge.template)
    identity = judge_identity(ev.judge, template, cfg.vllm)
    judges: list = []

    def judge_factory():
        if not judges:
            judges.append(make_judge(ev.judge, template, cfg.vllm))
        return judges[0]

    sizes = [n for n in sc.sizes if n <= len(curated)]
    skipped = [n for n in sc.sizes if n > len(curated)]
    if skipped:
        log.warning("scaling: A_k^(%d) has %d pairs; sizes %s are skipped", iteration, len(curated), skipped)
    base_digest = dir_digest("models/base")
    points, keep = [], set()
    tags = {**tracking.base_tags(["models/base", "data/seed", f"data/curated/iter{iteration}"]), "humpback.role": "scaling"}
    with tracking.stage_run(cfg, f"scaling iter{iteration}", tags, outputs=[out]):
        mlflow.log_params({"sizes": sc.sizes, "iteration": iteration, "with_seed": sc.with_seed,
                           "available_pairs": len(curated), "reference": ev.reference, "judge": ev.judge.kind})
        for n in sizes:
            subset = curated[:n]
            key = hashlib.sha256(json.dumps({
                "ids": [r["id"] for r in subset], "seed": len(seed), "base": base_digest, "train": cfg.train.model_dump(),
                "steps": sc.steps.get(n),
                "prompts": cfg.prompts.model_dump(), "generation": ev.generation.model_dump(), "tag": ev.inference_tag,
                "judge": identity, "reference": references}, sort_keys=True, default=str).encode()).hexdigest()[:16]
            work = Path(out) / f"n{n}"
            keep.add(work.name)
            done = work / "result.json"
            if done.exists() and json.loads(done.read_text()).get("key") == key:
                result = json.loads(done.read_text())
                log.info("scaling N=%d: reused (win rate %s)", n, result["win_rate"])
            else:
                examples = (forward_examples(seed, cfg.prompts.seed_tag, cfg.prompts)
                            + forward_examples(subset, cfg.prompts.web_tag, cfg.prompts))
                model_dir = Path(tempfile.mkdtemp(prefix=f"humpback-scaling-{n}-"))
                try:
                    # one process here (the same global batch through accumulation): the
                    # launcher runs the train stages only
                    train_cfg = cfg.train.model_copy(update={"distributed": DistributedConfig(),
                                                             **({"max_steps": sc.steps[n]} if n in sc.steps else {})})
                    trained = train("models/base", examples, train_cfg, model_dir, progress=progress)
                    spec = EngineSpec(model_dir, ev.generation, cfg.vllm)
                    outputs = answer(rows, spec, ev, cfg.prompts, f"scaling_n{n}", progress, ray=cfg.ray)
                finally:
                    shutil.rmtree(model_dir, ignore_errors=True)
                judged = judge_pairs(rows, outputs, references, ev.judge, template, cfg.vllm, work, progress,
                                     judge_factory)
                m = eval_metrics(judged.annotations, n_splits=ev.lc_splits)
                result = {"key": key, "n": n, "examples": trained.examples, "steps": trained.steps,
                          "final_loss": round(trained.final_loss, 4), **{k: m.get(k) for k in (
                              "win_rate", "standard_error", "length_controlled_winrate", "n_total", "failed")}}
                write_json(work / "annotations.json", judged.annotations)
                write_json(done, result)
                log.info("scaling N=%d: win rate %s ± %s", n, result["win_rate"], result["standard_error"])
            points.append({k: v for k, v in result.items() if k != "key"})
            if result["win_rate"] is not None:
                mlflow.log_metric("scaling.win_rate", result["win_rate"], step=n)
        for stale in Path(out).glob("*"):
            if stale.name not in keep | {"summary.json"}:
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()
        fit = fit_log_curve(points)
        if fit["alpha"] is not None:
            mlflow.log_metrics({f"scaling.{k}": v for k, v in fit.items() if v is not None})
            tracking.log_to_parent({"scaling.alpha": fit["alpha"]})
    summary = {"enabled": True, "iteration": iteration, "reference": ev.reference, "log": "natural",
               "skipped_sizes": skipped, "points": points, **fit}
    write_json(Path(out) / "summary.json", summary)
    write_json(metrics_path, summary)
    log.info("scaling: alpha = %s (win rate = alpha * ln N + C over N = %s)", fit["alpha"], sizes)


if __name__ == "__main__":
    run_stage(main)

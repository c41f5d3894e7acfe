"""Stage `scaling`: the paper's data-efficiency fit (§3.3, Fig. 4, Table 3).

\b
    dvc exp run -S 'scaling.sizes=[100,200,400,800]'
    python pipeline/scaling.py --metrics-dir metrics --out metrics/scaling.json

For each N in `scaling.sizes` the DAG already trained a model on N curated pairs (`scale_train@N`,
nested subsets in a seeded order), answered the eval set (`scale_answer@N`) and judged it against
the reference (`scale_evaluate@N`); this stage reads their metrics
(metrics/train/scaling_n<N>.json and metrics/eval/scaling_n<N>.json) and fits win rate =
alpha * ln N + C (the paper does not state the log base; we use the natural log). alpha is the data-efficiency number of the paper's Table 3. A size larger
than the curated set trained on all of it: it is listed under `skipped_sizes` and left out of the
fit. With `scaling.sizes: []` (the default) there are no such stages and this one records that.
"""

import json
import logging
import math
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.config import ITERATIONS
from humpback.core.files import write_json
from humpback.evaluate.config import EvaluateConfig
from humpback.report.config import ScalingConfig
from humpback.tracking.stage import stage_run

log = logging.getLogger("humpback.scaling")
POINT_KEYS = ("win_rate", "standard_error", "length_controlled_winrate", "n_total", "failed")


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


def read_point(metrics_dir: Path, n: int) -> dict:
    """One size's numbers from the metrics its train and evaluate stages wrote."""
    files = {"train": metrics_dir / "train" / f"scaling_n{n}.json", "eval": metrics_dir / "eval" / f"scaling_n{n}.json"}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise click.ClickException(f"scaling size {n}: {', '.join(missing)} missing; run `dvc repro scaling` "
                                   "(it builds scale_train@N, scale_answer@N and scale_evaluate@N first)")
    train, judged = (json.loads(f.read_text(encoding="utf-8")) for f in files.values())
    return {"n": n, "curated_pairs": train["curated_pairs"], "examples": train["examples"], "steps": train["steps"],
            "final_loss": train["final_loss"], "heldout_nll": train["heldout"].get("nll"),
            **{k: judged.get(k) for k in POINT_KEYS}}


@click.command(help=__doc__)
@params_option
@click.option("--metrics-dir", default="metrics", show_default=True, type=click.Path(file_okay=False),
              help="Where scale_train@N and scale_evaluate@N wrote their metrics (train/, eval/).")
@click.option("--out", "metrics_path", default="metrics/scaling.json", show_default=True)
def main(params_path, metrics_dir, metrics_path):
    cfg = load_params(params_path, scaling=ScalingConfig, evaluate=EvaluateConfig, iterations=ITERATIONS)
    sc = cfg.scaling
    if not sc.sizes:
        write_json(metrics_path, {"enabled": False})
        log.info("scaling: off (scaling.sizes is empty)")
        return
    points = [read_point(Path(metrics_dir), n) for n in sc.sizes]
    skipped = [p["n"] for p in points if p["curated_pairs"] < p["n"]]
    used = [p for p in points if p["n"] not in skipped]
    if skipped:
        log.warning("scaling: sizes %s exceed the curated set (%d pairs): left out of the fit", skipped,
                    max(p["curated_pairs"] for p in points))
    fit = fit_log_curve(used)
    iteration = sc.curated_iteration(cfg.iterations)
    summary = {"enabled": True, "iteration": iteration, "reference": cfg.evaluate.reference, "log": "natural",
               "skipped_sizes": skipped, "points": used, **fit}
    with stage_run(cfg, f"scaling iter{iteration}", role="scaling", iteration=iteration, prefix="scaling.",
                            inputs=[f"data/curated/iter{iteration}"], sections=["scaling", "iterations", "evaluate.reference"]) as run:
        run.finish(fit, parent={"scaling.alpha": fit["alpha"]})
    write_json(metrics_path, summary)
    log.info("scaling: alpha = %s (win rate = alpha * ln N + C over N = %s)", fit["alpha"], [p["n"] for p in used])


if __name__ == "__main__":
    run_stage(main)

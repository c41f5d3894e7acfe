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

import logging
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.config import ITERATIONS
from humpback.core.files import write_json
from humpback.evaluate.config import EvaluateConfig
from humpback.report.config import ScalingConfig
from humpback.report.scaling import MissingPoint, fit_log_curve, read_point
from humpback.tracking.stage import stage_run

log = logging.getLogger("humpback.scaling")


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
    try:
        points = [read_point(Path(metrics_dir), n) for n in sc.sizes]
    except MissingPoint as exc:
        raise click.ClickException(str(exc)) from None
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

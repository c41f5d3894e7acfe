"""Stage `report`: the research report over every iteration (paper §3-4).

\b
    dvc repro report
    dvc plots show            # or open plots/*.png; `dvc plots diff` compares experiments

Reads metrics/eval/<m>.json, metrics/train/<m>.json, metrics/score/iter<i>.json (the curator
check's ROC AUC: `curator_auc` per iteration), metrics/curate/iter<i>.json and iter<i>_thresholds.csv,
and metrics/scaling.json. Writes plots/win_rate.png (win rate ± s.e. and LC
win rate per model), plots/heldout_nll.png (held-out NLL per token of the base model, M_yx and M0..Mn),
plots/scores.png (score histogram per curator), plots/kept_by_threshold.png (|A_k| per threshold and
iteration), plots/scaling.png (when the scaling stage ran), metrics/report.json and
metrics/report/win_rate.csv; logs the plots and numbers to an MLflow "report" run.
"""

import csv
import logging
from pathlib import Path

import click
import mlflow

from _common import load_params, params_option, run_stage
from humpback import tracking
from humpback.io import write_json
from humpback.report import win_rate_rows, write_report

log = logging.getLogger("humpback.report")


@click.command(help=__doc__)
@params_option
@click.option("--metrics-dir", default="metrics", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--plots", "plots_dir", default="plots", show_default=True, type=click.Path(file_okay=False))
@click.option("--out", default="metrics/report.json", show_default=True)
def main(params_path, metrics_dir, plots_dir, out):
    cfg = load_params(params_path)
    iterations = sorted(cfg.iterations)
    summary, plots = write_report(metrics_dir, plots_dir, cfg.evaluate.models, iterations)
    write_json(out, summary)
    rows_path = Path(metrics_dir) / "report" / "win_rate.csv"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with open(rows_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["model", "win_rate", "lc_win_rate"])
        writer.writeheader()
        writer.writerows(win_rate_rows(summary))
    tags = {**tracking.base_tags([]), "humpback.role": "report"}
    with tracking.stage_run(cfg, "report", tags, outputs=[plots_dir, out]):
        for model, value in summary["win_rate"].items():
            if value is not None:
                mlflow.log_metric(f"win_rate.{model}", value)
        for key, value in summary["kept"].items():
            mlflow.log_metric(f"kept.{key}", value)
        for key, value in summary.get("curator_auc", {}).items():
            mlflow.log_metric(f"curator_auc.{key}", value)
        for direction, values in summary.get("heldout_nll", {}).items():
            for model, value in values.items():
                mlflow.log_metric(f"heldout_nll.{direction}.{model}", value)
        for model, reliable in summary["judge_reliable"].items():
            mlflow.set_tag(f"judge_reliable.{model}", str(reliable).lower())
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_artifact(out)
    for model, why in summary["judge_unreliable_because"].items():
        log.warning("report: the win rate of %s is not a measurement, its judge fails the bar: %s", model, why)
    log.info("report: win rates %s (vs %s), kept %s, curator AUC %s; plots: %s", summary["win_rate"],
             summary["reference"], summary["kept"], summary.get("curator_auc", "not measured"),
             ", ".join(p.name for p in plots))


if __name__ == "__main__":
    run_stage(main)

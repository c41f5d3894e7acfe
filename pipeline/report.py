"""Stage `report`: the research report over every iteration (paper §3-4).

\b
    dvc repro report
    dvc plots show            # or open plots/*.png; `dvc plots diff` compares experiments

Reads metrics/eval/<m>.json, metrics/train/<m>.json, metrics/score/iter<i>.json (the curator
check's ROC AUC: `curator_auc` per iteration), metrics/curate/iter<i>.json and iter<i>_thresholds.csv,
and metrics/scaling.json. Writes plots/win_rate.png (win rate ± s.e. and LC
win rate per model), plots/heldout_nll.png (held-out NLL per token of the base model, M_yx and M0..Mn),
plots/scores.png (score histogram per curator), plots/kept_by_threshold.png (|A_k| per threshold and
iteration), plots/scaling.png (when the scaling stage ran), metrics/report.json,
metrics/report/win_rate.csv and metrics/report/curated_pairs.md (the best and the worst curated pairs
of each iteration, read from data/curated; Markdown beside the plots, not in plots/, which DVC reads
as plot data); logs the plots, the pairs and the numbers to an MLflow "report" run.
"""

import csv
import logging
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.config import ITERATIONS
from humpback.core.files import atomic_write, write_json
from humpback.evaluate.config import EvaluateConfig
from humpback.report.pairs import pairs_markdown, read_curated
from humpback.report.plots import write_report
from humpback.report.summary import win_rate_rows
from humpback.tracking.stage import stage_run

log = logging.getLogger("humpback.report")


@click.command(help=__doc__)
@params_option
@click.option("--metrics-dir", default="metrics", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--plots", "plots_dir", default="plots", show_default=True, type=click.Path(file_okay=False))
@click.option("--curated", "curated_dir", default="data/curated", show_default=True, type=click.Path(file_okay=False),
              help="The curated sets, for the best and worst pairs of each iteration.")
@click.option("--pairs-out", default="metrics/report/curated_pairs.md", show_default=True,
              help="Where the best and worst curated pairs go (Markdown).")
@click.option("--out", default="metrics/report.json", show_default=True)
def main(params_path, metrics_dir, plots_dir, curated_dir, pairs_out, out):
    cfg = load_params(params_path, evaluate=EvaluateConfig, iterations=ITERATIONS)
    iterations = sorted(cfg.iterations)
    summary, plots = write_report(metrics_dir, plots_dir, cfg.evaluate.models, iterations)
    with atomic_write(pairs_out) as tmp:
        tmp.write_text(pairs_markdown(read_curated(curated_dir, iterations)), encoding="utf-8")
    write_json(out, summary)
    rows_path = Path(metrics_dir) / "report" / "win_rate.csv"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with open(rows_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["model", "win_rate", "lc_win_rate"])
        writer.writeheader()
        writer.writerows(win_rate_rows(summary))
    with stage_run(cfg, "report", role="report", outputs=[plots_dir, out], sections=["evaluate.models"]) as run:
        run.finish({k: summary.get(k, {}) for k in ("win_rate", "kept", "curator_auc", "heldout_nll")},
                   tags={f"judge_reliable.{m}": str(ok).lower() for m, ok in summary["judge_reliable"].items()},
                   artifacts=[out, pairs_out, *((plot, "plots") for plot in plots)])
    for model, why in summary["judge_unreliable_because"].items():
        log.warning("report: the win rate of %s is not a measurement, its judge fails the bar: %s", model, why)
    log.info("report: win rates %s (vs %s), kept %s, curator AUC %s; plots: %s", summary["win_rate"],
             summary["reference"], summary["kept"], summary.get("curator_auc", "not measured"),
             ", ".join(p.name for p in plots))


if __name__ == "__main__":
    run_stage(main)

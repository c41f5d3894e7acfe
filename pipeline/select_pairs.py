"""Stage `select@i`: A_k^(i), the candidates the curator scored at least k (paper §2.3).

\b
    dvc repro select@1
    dvc exp run -S curate.threshold=4      # reruns select@1 and what depends on it, never scoring
    python pipeline/select_pairs.py --iteration 1 --scores data/scores/iter1 --out data/curated/iter1

Reads `curate.threshold`, `curate.use_expected_score`, `curate.max_selected`, `curate.sample_seed`.
Writes data/curated/iter<i>/curated.parquet (id, instruction, response, score, expected score, url),
metrics/curate/iter<i>.json (counts per score, kept count and share, unparseable count, length
stats of the kept pairs: the paper's Table 2 columns), the histogram metrics/curate/iter<i>_scores.csv
and metrics/curate/iter<i>_thresholds.csv (how many pairs each threshold would keep).
An empty selection is reported, not an error: training then uses the seed data alone.
"""

import csv
import logging
import shutil
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.files import write_json
from humpback.core.shards import write_table_atomic
from humpback.curate.config import CurateConfig
from humpback.curate.select import histogram_rows, select, threshold_curve
from humpback.tracking.stage import stage_run

log = logging.getLogger("humpback.select")


@click.command(help=__doc__)
@params_option
@click.option("--iteration", type=int, required=True)
@click.option("--scores", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--candidates", default="data/candidates", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default=None, help="Default: metrics/curate/iter<i>.json")
def main(params_path, iteration, scores, candidates, out, metrics_path):
    params = load_params(params_path, curate=CurateConfig)
    cfg = params.curate
    try:
        table, metrics = select(candidates, scores, cfg)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    metrics = {"iteration": iteration, **metrics}
    with stage_run(params, f"select iter{iteration}", role="select", inputs=[scores, candidates],
                            outputs=[out], iteration=iteration,
                            sections=["curate.threshold", "curate.use_expected_score", "curate.max_selected",
                                      "curate.sample_seed"]) as run:
        shutil.rmtree(out, ignore_errors=True)
        write_table_atomic(table, Path(out) / "curated.parquet")
        run.finish(metrics, params={"compared": metrics["compared"]}, tables=_sample(table, iteration),
                   parent={f"iter{iteration}.kept": metrics["kept"], f"iter{iteration}.kept_share": metrics["kept_share"],
                           f"iter{iteration}.well_formed": metrics["well_formed"]})
    metrics_path = Path(metrics_path or f"metrics/curate/iter{iteration}.json")
    write_json(metrics_path, metrics)
    with open(metrics_path.with_name(f"{metrics_path.stem}_scores.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["score", "count"])
        writer.writeheader()
        writer.writerows(histogram_rows(metrics))
    with open(metrics_path.with_name(f"{metrics_path.stem}_thresholds.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["threshold", "kept_score", "kept_expected_score"])
        writer.writeheader()
        writer.writerows(threshold_curve(scores))
    if metrics["kept"] == 0:
        log.warning("select@%d: no pair reached the threshold %s (scores: %s); train@%d will use the seed data only",
                    iteration, cfg.threshold, metrics["scores"], iteration)
    log.info("select@%d: kept %d of %d pairs (%.1f%%) with %s >= %s", iteration, metrics["kept"], metrics["pairs"],
             100 * metrics["kept_share"], metrics["compared"], cfg.threshold)


def _sample(table, iteration: int) -> dict:
    """A readable sample of A_k with its scores (the MLflow UI shows it as a table)."""
    if not table.num_rows:
        return {}
    sample = table.to_pandas().sort_values("id").head(50)
    for col in ("instruction", "response"):
        sample[col] = sample[col].str.slice(0, 500)
    return {f"curated_sample_iter{iteration}.json": sample}


if __name__ == "__main__":
    run_stage(main)

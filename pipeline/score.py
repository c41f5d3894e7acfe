"""Stage `score@i`: the curator M_{i-1} rates every candidate pair (paper §2.3, self-curation).

\b
    dvc repro score@1
    python pipeline/score.py --iteration 1 --curator models/m0 --candidates data/candidates --out data/scores/iter1

Reads `curate.scorer`, `curate.template`, `curate.generation` (its engine runs both scorers),
`curate.batch_size`, `curate.negatives` and `curate.sample_seed` (the curator check), `vllm` and
`ray` (where the missing shards run). Scores do not depend on the threshold (selection does), so a
threshold sweep never re-scores. Incremental and resumable per candidate shard, like augmentation. Writes data/scores/iter<i>/*.parquet (candidate id,
iteration, curator digest, scorer, score 1..5 or null, expected score, probabilities, raw rating,
parse error) and metrics/score/iter<i>.json (counts per score, unparseable ratings by reason).
With `curate.negatives` > 0 the curator also rates negative pairs made from the candidates (another
candidate's segment; the segment cut mid-way; kept in _curator_check-<key>.parquet beside the
shards) and `curator_check` reports the ROC AUC of real against negative pairs: 0.5 means the
curator cannot tell a matched pair from a broken one.
"""

import logging

import click

from _common import load_params, params_option, run_stage
from humpback.core.config import RayConfig
from humpback.core.files import write_json
from humpback.core.keys import path_md5
from humpback.curate.config import CurateConfig
from humpback.curate.score import score_candidates
from humpback.models.config import VLLMConfig
from humpback.models.engine import EngineSpec
from humpback.prompts import read_template
from humpback.tracking.stage import stage_run

log = logging.getLogger("humpback.score")


@click.command(help=__doc__)
@params_option
@click.option("--iteration", type=int, required=True)
@click.option("--curator", required=True, type=click.Path(exists=True, file_okay=False), help="Model folder of M_{i-1}.")
@click.option("--candidates", default="data/candidates", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default=None, help="Default: metrics/score/iter<i>.json")
@click.option("--progress/--no-progress", default=True)
def main(params_path, iteration, curator, candidates, out, metrics_path, progress):
    params = load_params(params_path, curate=CurateConfig, vllm=VLLMConfig, ray=RayConfig)
    cfg = params.curate
    template = read_template("rate", cfg.template)
    spec = EngineSpec(curator, cfg.generation, params.vllm)
    with stage_run(params, f"score iter{iteration}", role="score", inputs=[curator, candidates],
                            outputs=[out], iteration=iteration, tags={"humpback.curator": curator},
                            sections=["curate.scorer", "curate.template", "curate.generation", "curate.batch_size",
                                      "curate.negatives", "curate.sample_seed"]) as run:
        report = score_candidates(candidates, out, iteration, spec, cfg, template, path_md5(curator),
                                  progress=progress, ray=params.ray)
        metrics = {"iteration": iteration, "curator": curator, "scorer": cfg.scorer, **report.metrics()}
        run.finish(metrics | report.run_stats(), engine=spec, ran_on=report.ran_on,
                   parent={f"iter{iteration}.score5_share": metrics["scores"]["5"] / max(report.pairs, 1),
                           f"iter{iteration}.curator_auc": (report.check or {}).get("auc")})
    write_json(metrics_path or f"metrics/score/iter{iteration}.json", metrics)
    if metrics["unparseable"]:
        log.warning("%d ratings had no parseable score (%s); they count as unscored",
                    metrics["unparseable"], metrics["unparseable_reasons"])
    log.info("score@%d by %s (%s): %d pairs, scores %s; %d shards scored (%s), %d reused", iteration, curator,
             cfg.scorer, report.pairs, metrics["scores"], report.shards_generated, report.ran_on, report.shards_reused)
    if report.check:
        c = report.check
        log.info("score@%d curator check: ROC AUC %s of real pairs against %d negatives (other response %s, "
                 "truncated %s; 0.5 = cannot tell them apart), mean %s %s vs %s%s", iteration, c["auc"],
                 c["negatives"], c["auc_other_response"], c["auc_truncated_response"], c["compared"],
                 c.get("mean_real"), c.get("mean_negative"), " (reused)" if report.check_reused else "")


if __name__ == "__main__":
    run_stage(main)

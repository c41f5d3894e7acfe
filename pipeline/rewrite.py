"""Stage `rewrite@i`: back-and-forth translation of A_k^(i) (Nguyen et al., 2024), off by default.

\b
    dvc exp run -S rewrite.enabled=true     # the ablation: M_i trained on rewritten responses
    python pipeline/rewrite.py --iteration 1 --curated data/curated/iter1 --out data/rewritten/iter1

Reads `rewrite.*` and `vllm` (with `engine: vllm`). With `rewrite.enabled`, an aligned model
(`rewrite.model`, the demo's base instruct model by default; or any OpenAI-compatible endpoint with
`rewrite.generation.engine: openai`) rewrites every curated response given its generated instruction
and the original web segment (prompt: src/humpback/prompts/rewrite.txt), so that the response
answers the instruction while keeping the segment's facts. Each rewrite is checked against its
segment (src/humpback/rewrite/faithful.py): the share of its words found in the segment
(`min_overlap`), the share of the segment's words it keeps (`min_coverage`), and its length ratio;
one that fails is dropped, or kept with its original response (`rewrite.unfaithful: original`),
counted by reason. Rewrites are cached per pair in data/rewritten/iter<i>/rewrites.jsonl (a DVC
`persist` output): a kill loses at most one chunk of `rewrite.chunk_size` pairs, and a new
threshold k rewrites only pairs not rewritten before. train@i then trains on
data/rewritten/iter<i>/pairs.parquet instead of the curated set.

Off (the default), the stage writes an empty pairs.parquet and `{"enabled": false}`: no model runs,
and train@i trains on the curated responses as they are. Requests an endpoint failed are asked
again by the next run; until then the stage exits 75 and DVC records nothing.
"""

import logging
import shutil
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.files import write_json
from humpback.core.incomplete import Incomplete
from humpback.core.shards import read_table, write_table_atomic
from humpback.models.config import VLLMConfig
from humpback.prompts import read_template
from humpback.rewrite.config import RewriteConfig
from humpback.rewrite.schema import PAIRS_FILE, REWRITTEN_SCHEMA
from humpback.tracking.stage import stage_run

log = logging.getLogger("humpback.rewrite")


@click.command(help=__doc__)
@params_option
@click.option("--iteration", type=int, required=True)
@click.option("--curated", required=True, type=click.Path(exists=True, file_okay=False), help="A_k of the iteration.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default=None, help="Default: metrics/rewrite/iter<i>.json")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar (pairs).")
def main(params_path, iteration, curated, out, metrics_path, progress):
    params = load_params(params_path, rewrite=RewriteConfig, vllm=VLLMConfig)
    cfg, out = params.rewrite, Path(out)
    metrics_path = Path(metrics_path or f"metrics/rewrite/iter{iteration}.json")
    if not cfg.enabled:
        shutil.rmtree(out, ignore_errors=True)  # the same folder a from-scratch run writes
        write_table_atomic(REWRITTEN_SCHEMA.empty_table(), out / PAIRS_FILE)
        write_json(metrics_path, {"iteration": iteration, "enabled": False})
        log.info("rewrite@%d is off (rewrite.enabled: false): train@%d trains on %s as curated",
                 iteration, iteration, curated)
        return
    from humpback.rewrite.run import make_rewriter, rewrite_pairs, rewriter_identity  # the model stack: only when on

    template = read_template("rewrite", cfg.template)
    pairs = read_table(curated).to_pylist()
    identity = rewriter_identity(cfg, template, params.vllm)
    with stage_run(params, f"rewrite iter{iteration}", role="rewrite", iteration=iteration,
                   inputs=[curated] + ([cfg.model] if cfg.generation.engine != "openai" else []), outputs=[str(out)],
                   sections=["rewrite"]) as run:
        table, report = rewrite_pairs(pairs, out, cfg, template, identity, lambda: make_rewriter(cfg, params.vllm),
                                      progress)
        if report.failed:
            raise Incomplete(f"rewrite@{iteration}: {report.failed} of {report.pairs} pairs have no rewrite "
                             f"({'; '.join(report.reasons[:2]) or 'failed'}); the {report.pairs - report.failed} "
                             f"rewrites made are kept in {out}: run `dvc repro` again to ask only for the missing ones")
        write_table_atomic(table, out / PAIRS_FILE)
        metrics = {"iteration": iteration, **report.metrics(table.to_pylist())}
        run.finish(metrics, params={"rewriter": identity["model"].get("md5") or identity["model"]["model"]},
                   parent={f"iter{iteration}.rewritten": report.rewritten, f"iter{iteration}.rewrite_kept": metrics["kept"]})
    write_json(metrics_path, metrics)
    if report.unfaithful:
        log.warning("rewrite@%d: %d rewrites failed the faithfulness check (%s) and were %s", iteration,
                    sum(report.unfaithful.values()),
                    ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in report.unfaithful.items() if v),
                    "kept with their original responses" if cfg.unfaithful == "original" else "dropped")
    log.info("rewrite@%d: %d of %d pairs rewritten, %d kept as curated, %d dropped; %d rewrites made, %d reused",
             iteration, report.rewritten, report.pairs, report.kept_original, metrics["dropped"], report.requested,
             report.reused)


if __name__ == "__main__":
    run_stage(main)

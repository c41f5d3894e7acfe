"""Stage `augment`: self-augmentation, one generated instruction per corpus segment (paper §2.2).

\b
    dvc repro augment
    python pipeline/augment.py --model models/backward --corpus data/corpus --out data/candidates

Reads `augment.*`, `prompts.backward`, `vllm` (with `engine: vllm`) and `ray` (where the missing
shards run: here, or on a Ray cluster). Nucleus sampling (T=0.7, p=0.9 by default) with the
backward model M_yx, prompted exactly as it was trained. Incremental per corpus shard: only shards
whose corpus bytes, model, sampling settings or prompt changed are generated again, stale ones are
removed, and a killed run picks up where it stopped (the output is a DVC `persist` folder).
What a small model wraps around a request is unwrapped ("Here is the instruction:", "Instruction:",
quotes, 'The text answers the question "..."'), and generations that are no instruction are dropped,
each counted by rule (`augment.hygiene`, src/humpback/augment/form.py): empty, echoing the backward
prompt, copying a run of the segment or its opening words, describing or continuing the text, a
labelled text ("Text: ..."), a list item, symbol noise. `well_formed` is the share of candidates that
read as a request (a question, an imperative, "Please ..."): a quality signal, like the curator AUC.
Writes data/candidates/*.parquet (segment columns + instruction + backward model digest +
sampling settings) and metrics/augment.json (data only; reuse and speed go to the log and MLflow).
"""

import logging

import click

from _common import load_params, params_option, run_stage
from humpback.augment.config import AugmentConfig
from humpback.augment.generate import augment
from humpback.core.config import RayConfig
from humpback.core.files import write_json
from humpback.core.keys import path_md5
from humpback.models.config import VLLMConfig
from humpback.models.engine import EngineSpec
from humpback.prompts import read_template
from humpback.prompts.config import PromptsConfig
from humpback.tracking.stage import stage_run

log = logging.getLogger("humpback.augment")


@click.command(help=__doc__)
@params_option
@click.option("--model", default="models/backward", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--corpus", default="data/corpus", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="data/candidates", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default="metrics/augment.json", show_default=True)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar (segments/s).")
def main(params_path, model, corpus, out, metrics_path, progress):
    cfg = load_params(params_path, augment=AugmentConfig, prompts=PromptsConfig, vllm=VLLMConfig, ray=RayConfig)
    g = cfg.augment.generation
    template = read_template("backward", cfg.prompts.backward)
    digest = path_md5(model)
    with stage_run(cfg, "augment", role="augment", inputs=[model, corpus], outputs=[out],
                            sections=["augment", "prompts.backward"], tags={"humpback.backward_model": digest}) as run:
        spec = EngineSpec(model, g, cfg.vllm)
        report = augment(corpus, out, spec, cfg.augment, template, digest, progress=progress, ray=cfg.ray)
        metrics, stats = report.metrics(), report.run_stats()
        headline = {"augment.candidates": report.candidates, "augment.well_formed": metrics["well_formed"]}
        run.finish(metrics | stats, parent=headline, engine=spec, ran_on=report.ran_on)
    write_json(metrics_path, metrics)
    if dropped := {k: v for k, v in metrics["dropped"].items() if v}:
        log.warning("%d generations were no instruction and were left out (%s; rules: augment.hygiene)",
                    sum(dropped.values()), ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in dropped.items()))
    log.info("augment: %d candidates from %d segments; %d shards generated (%s), %d reused, %d stale removed%s",
             report.candidates, report.segments, report.shards_generated, report.ran_on, report.shards_reused,
             report.files_removed,
             f"; {stats['segments_per_s']:.2f} segments/s" if stats["segments_per_s"] else "")


if __name__ == "__main__":
    run_stage(main)

"""Stages `train_backward`, `train_m0` (and `train@i` later): fine-tune the base model.

\b
    dvc repro train_backward train_m0
    python pipeline/train.py --role backward --name backward --out models/backward
    python pipeline/train.py --role forward --name m0 --out models/m0
    python pipeline/train.py --role forward --name m1 --curated data/curated/iter1 --out models/m1
    python pipeline/train.py --role forward --name scaling_n100 --scaling-size 100 --out models/scaling/n100

Reads `train.*`, `prompts.*` and `model.*` (named in the model card); M_yx trains with `train`
changed by the keys `train_backward` sets. The backward model M_yx learns instruction-from-response on the
seed pairs; forward models learn response-from-instruction on the seed pairs (tagged with
`prompts.seed_tag`) plus any curated pairs (tagged with `prompts.web_tag`): with `rewrite.enabled`,
train@i reads rewrite@i's rewritten pairs (--rewritten) instead of the curated set (--curated). Every model starts from
the base model. One MLflow run per model: training params, loss curve, token counts, data sizes,
role, git commit and the DVC hashes of the inputs. After training, the held-out seed pairs are
scored under the base model and the trained one (NLL per target token, in the format trained on:
instruction given response for M_yx, response given instruction with the seed tag for M0..Mn):
`heldout.nll`, `heldout.nll_base` and `heldout.nll_gain` in the metrics, lower NLL is better
(M1..Mn run with --no-heldout-base: the base's number is M0's).
Each model folder gets a README.md model card (base, data with DVC md5s, recipe, held-out NLL).

`--scaling-size N` trains a point of the data-scaling curve (stages `scale_train@N`): the first N
pairs of the curated set of `scaling.iteration` (default: the last), in the seeded order of
`curate.sample_seed` (so the sets are nested), plus the seed pairs only with `scaling.with_seed`,
for `scaling.steps[N]` steps where given.

With `train.distributed.processes * machines > 1` the script re-launches itself under
`accelerate launch` (the strategy's config file); only the main process writes the model, the
metrics and the MLflow run. On machines 1..n-1 run the same command with HUMPBACK_MACHINE_RANK=i.
A checkpoint every `train.checkpoint_steps` lands in `train.checkpoint_dir`; rerunning a killed
stage resumes from the last complete one (the log says from which step).
"""

import logging
import sys
import time
from functools import partial
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.config import ITERATIONS
from humpback.core.files import write_json
from humpback.core.keys import path_md5, seeded_order
from humpback.core.shards import read_table
from humpback.curate.config import CurateConfig
from humpback.models.config import ModelConfig
from humpback.prompts import read_template
from humpback.prompts.config import PromptsConfig
from humpback.report.config import ScalingConfig
from humpback.rewrite.config import RewriteConfig
from humpback.tracking.stage import stage_run
from humpback.train.card import CardFacts, TrainingData, write_card
from humpback.train.config import TRAIN_BACKWARD, TrainConfig, backward_recipe
from humpback.train.launch import is_main_process, relaunch_if_distributed
from humpback.train.likelihood import heldout_nll
from humpback.train.recipe import backward_examples, forward_examples, train

log = logging.getLogger("humpback.train")
HELDOUT_MAX_TOKENS = 2048


@click.command(help=__doc__)
@params_option
@click.option("--role", type=click.Choice(["backward", "forward"]), required=True)
@click.option("--name", required=True, help="Model name: backward, m0, m1, ... (MLflow run name).")
@click.option("--base", default="models/base", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--seed-data", default="data/seed", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--curated", default=None, type=click.Path(exists=True, file_okay=False),
              help="Curated (instruction, response) shards to add, tagged as web data (forward only).")
@click.option("--rewritten", default=None, type=click.Path(file_okay=False),
              help="rewrite@i's output for --curated: trained on instead of it where rewrite.enabled is true.")
@click.option("--curator", default=None, help="Name of the model that curated --curated (MLflow lineage).")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default=None, help="Default: metrics/train/<name>.json")
@click.option("--scaling-size", type=click.IntRange(min=1), default=None,
              help="A data-scaling point: N curated pairs of the scaling iteration's set (see above; not with --curated).")
@click.option("--heldout-base/--no-heldout-base", default=True, show_default=True,
              help="Also score the held-out pairs under the base model (M1..Mn skip it: M0 did the same).")
def main(params_path, role, name, base, seed_data, curated, rewritten, curator, out, metrics_path, scaling_size, heldout_base):
    cfg = load_params(params_path, train=TrainConfig, prompts=PromptsConfig, curate=CurateConfig,
                      scaling=ScalingConfig, iterations=ITERATIONS, model=ModelConfig, train_backward=TRAIN_BACKWARD,
                      rewrite=RewriteConfig)
    if rewritten and cfg.rewrite.enabled:  # back-and-forth translation: the rewritten responses (rewrite@i)
        if not curated:
            raise click.UsageError("--rewritten replaces --curated: give both")
        curated = rewritten
    if scaling_size is not None:
        if curated or role != "forward":
            raise click.UsageError("--scaling-size trains a forward model on the scaling iteration's set: "
                                   "drop --curated and use --role forward")
        cfg, curated, curator = _scaling_point(cfg, scaling_size)
    # M_yx's own recipe: train with the fields train_backward sets (the run's params stay as written)
    recipe = backward_recipe(cfg.train, cfg.train_backward) if role == "backward" else cfg.train
    try:
        relaunch_if_distributed(recipe, __file__, sys.argv[1:])
    except (RuntimeError, FileNotFoundError) as exc:  # a launch that cannot work here: one line, no traceback
        raise click.ClickException(str(exc)) from None
    main_process = is_main_process()
    seed = read_table(seed_data, ["instruction", "response"], pattern="train.parquet").to_pylist()
    curated_pairs = read_table(curated, ["id", "instruction", "response"]).to_pylist() if curated else []
    scaling = None
    if scaling_size is not None:
        scaling = {"size": scaling_size, "curated": curated, "available": len(curated_pairs)}
        if scaling_size > len(curated_pairs):
            log.warning("%s: %s has %d pairs, fewer than %d: this point trains on all of them and the fit "
                        "leaves it out", name, curated, len(curated_pairs), scaling_size)
        curated_pairs = seeded_order(curated_pairs, cfg.curate.sample_seed)[:scaling_size]
        seed = seed if cfg.scaling.with_seed else []  # the held-out pairs stay out either way
    if role == "backward":
        if curated:
            raise click.UsageError("--curated is for forward models")
        held_out = partial(backward_examples, template=read_template("backward", cfg.prompts.backward))
        examples = held_out(seed)
    else:  # held-out pairs are seed pairs: scored with the seed tag, as the seed is trained
        held_out = partial(forward_examples, tag=cfg.prompts.seed_tag, prompts=cfg.prompts)
        examples = held_out(seed) + forward_examples(curated_pairs, cfg.prompts.web_tag, cfg.prompts)
    start = time.perf_counter()
    if curated and not curated_pairs:
        log.warning("%s: the curated set is empty; training on the seed data alone", curated)
    # one MLflow run per model, opened by the main process only
    with stage_run(cfg, f"train {name}", role=role, model=(name, out), outputs=[out], prefix="humpback.",
                            inputs=[base, seed_data] + ([curated] if curated else []),
                            sections=["model", "train", "prompts"] + (["train_backward"] if role == "backward" else []) + (["curate.threshold", "curate.scorer"] if curated else [])
                            + (["rewrite.enabled"] if rewritten else [])
                            + (["scaling", "curate.sample_seed", "iterations"] if scaling_size else []),
                            tags=({"humpback.curator": curator or "unknown", "humpback.curated_data": curated} if curated else {})
                            | ({"humpback.scaling_size": str(scaling_size)} if scaling_size else {}),
                            datasets={"seed": (seed_data, seed)} | ({_data_name(curated): (curated, curated_pairs)}
                                                                    if curated else {}),
                            active=main_process) as run:
        result = train(base, examples, recipe, out, report_to_mlflow=main_process, name=name)
        if not main_process:
            return
        summary = {
            "examples": result.examples, "seed_pairs": len(seed), "curated_pairs": len(curated_pairs),
            "steps": result.steps, "batch_size": result.batch_size, "processes": result.processes,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "final_loss": round(result.final_loss, 4), "precision": result.precision,
            "heldout": _heldout_quality(cfg, held_out, seed_data, base if heldout_base else None,
                                        result.saved or out, name),
        } | ({"scaling": scaling} if scaling else {})
        data = [("seed", seed_data, seed)] + ([(_data_name(curated), curated, curated_pairs)] if curated else [])
        write_card(out, CardFacts(
            name=name, role=role, base=cfg.model, base_md5=path_md5(base), train=recipe, summary=summary,
            data=[TrainingData(n, str(p), len(rows), path_md5(p)) for n, p, rows in data],
            prompt=_how_to_prompt(role, cfg.prompts), tags=["scaling"] if scaling else []))
        run.finish(summary, params={"resumed_from_step": result.resumed_from_step} if result.resumed_from_step is not None else None,
                   parent={f"{name}.final_loss": summary["final_loss"], f"{name}.heldout_nll": summary["heldout"].get("nll")})
    write_json(metrics_path or f"metrics/train/{name}.json", summary)
    log.info("trained %s: %d examples, %d steps of %d on %d process(es), final loss %.3f (%s) in %.0fs -> %s",
             name, result.examples, result.steps, result.batch_size, result.processes, result.final_loss,
             result.precision, time.perf_counter() - start, out)


def _data_name(path: str) -> str:
    """curated/iter1, rewritten/iter1: the data's name on the MLflow run and in the model card."""
    return f"{Path(path).parent.name}/{Path(path).name}"


def _how_to_prompt(role: str, prompts: PromptsConfig) -> str:
    if role == "backward":
        return ("As the user message, the backward template around the text (`{response}`); the reply is "
                "the instruction:\n\n```\n" + read_template("backward", prompts.backward).strip() + "\n```")
    where = "as the system message" if prompts.tag_placement == "system" else "after the instruction, in the user message"
    return (f"The instruction as the user message, with a tag {where}: \"{prompts.seed_tag}\" for answers "
            f"in the style of the seed data (an AI assistant), \"{prompts.web_tag}\" for the style of the "
            "curated web text.")


def _scaling_point(cfg, size: int):
    """The config (`scaling.steps[size]` as its step budget), the curated set and its curator of a
    data-scaling point."""
    iteration = cfg.scaling.curated_iteration(cfg.iterations)
    if size in cfg.scaling.steps:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": cfg.scaling.steps[size]})})
    return cfg, f"data/curated/iter{iteration}", cfg.iterations[iteration].curator


def _heldout_quality(cfg, held_out, seed_data, base, trained, name) -> dict:
    """NLL per target token of the held-out seed pairs, under the base model and the trained one
    (in memory as saved, or its directory), in the format this model trained on (lower is better;
    `nll_gain` = base - trained)."""
    path = Path(seed_data) / "heldout.parquet"
    if not path.is_file():  # a seed folder not written by the seed stage
        log.warning("%s: %s does not exist: no held-out likelihood", name, path)
        return {"pairs": 0}
    pairs = read_table(seed_data, ["instruction", "response"], pattern="heldout.parquet").to_pylist()
    if not pairs:
        log.warning("%s: no held-out seed pairs (seed.heldout: 0): no held-out likelihood", name)
        return {"pairs": 0}
    start = time.perf_counter()
    examples = held_out(pairs)
    # whole pairs, even where training truncates them: a cut-off target cannot be scored
    size = {"max_length": max(cfg.train.max_length, HELDOUT_MAX_TOKENS), "batch_size": cfg.train.micro_batch_size}
    after = heldout_nll(trained, examples, **size)
    quality = {"pairs": after["pairs"], "tokens": after["tokens"], "nll": after["nll"]}
    if base is not None:
        quality["nll_base"] = heldout_nll(base, examples, **size)["nll"]
        if quality["nll_base"] is not None and after["nll"] is not None:
            quality["nll_gain"] = round(quality["nll_base"] - after["nll"], 4)
    log.info("%s: held-out NLL per token %s (base %s) on %d pairs, %.0fs", name, after["nll"],
             quality.get("nll_base", "not scored"), after["pairs"], time.perf_counter() - start)
    return quality


if __name__ == "__main__":
    run_stage(main)

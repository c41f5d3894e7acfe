"""Stage `answer@m`: model m answers every eval prompt (paper §3.1, generation for AlpacaEval).

\b
    dvc repro answer@m1
    python pipeline/answer.py --name m1 --model models/m1 --set data/eval/set --out data/eval/answers/m1.json

Reads `evaluate.generation` (T=0.7, p=0.9, seeded; its engine), `vllm`, `ray` (on a Ray cluster: one
replica answers the whole set), `evaluate.inference_tag` (the paper's best:
both tags) and `prompts.tag_placement`. Writes AlpacaEval's model-outputs JSON (instruction,
output, generator, dataset), which the official `alpaca_eval --model_outputs` reads unchanged.
"""

import logging
import time

import click

from _common import load_params, params_option, run_stage
from humpback.core.config import RayConfig
from humpback.core.files import write_json
from humpback.evaluate.answer import answer
from humpback.evaluate.config import EvaluateConfig
from humpback.evaluate.sets import EvalSetError, read_prompts
from humpback.models.config import VLLMConfig
from humpback.models.engine import EngineSpec
from humpback.prompts.config import PromptsConfig

log = logging.getLogger("humpback.answer")


@click.command(help=__doc__)
@params_option
@click.option("--name", required=True, help="The model's name in the outputs (generator): m0, m1, base, ...")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--set", "set_dir", default="data/eval/set", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--progress/--no-progress", default=True)
def main(params_path, name, model_dir, set_dir, out, progress):
    cfg = load_params(params_path, evaluate=EvaluateConfig, prompts=PromptsConfig, vllm=VLLMConfig,
                      ray=RayConfig)
    try:
        rows = read_prompts(set_dir)
    except EvalSetError as exc:
        raise click.ClickException(str(exc)) from None
    start = time.perf_counter()
    spec = EngineSpec(model_dir, cfg.evaluate.generation, cfg.vllm)
    outputs = answer(rows, spec, cfg.evaluate, cfg.prompts, name, progress, ray=cfg.ray)
    write_json(out, outputs)
    empty = sum(not o["output"] for o in outputs)
    if empty:
        log.warning("%s: %d empty answers (kept: an empty answer loses its comparison)", name, empty)
    log.info("answer@%s: %d prompts in %.0fs -> %s", name, len(outputs), time.perf_counter() - start, out)


if __name__ == "__main__":
    run_stage(main)

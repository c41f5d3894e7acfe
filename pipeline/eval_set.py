"""Stage `eval_set`: the evaluation prompts, fixed once for every model (paper §3.1: AlpacaEval).

\b
    dvc repro eval_set
    python pipeline/eval_set.py --out data/eval/set --references data/eval/answers/dataset.json

Reads `evaluate.set`: the demo prompts (data/demo/eval.jsonl, no references), AlpacaEval from the
hub (805 prompts with text-davinci-003's answers) or a local copy of it, or any local file. Writes
data/eval/set/prompts.json, the set's reference outputs (AlpacaEval's model-outputs format; an empty
list when the set has none) and metrics/eval_set.json.
"""

import logging

import click

from _common import load_params, params_option, run_stage
from humpback.core.files import write_json
from humpback.core.stats import length_stats
from humpback.evaluate.config import EvaluateConfig
from humpback.evaluate.sets import EvalSetError, has_references, load_eval_set, reference_outputs

log = logging.getLogger("humpback.eval_set")


@click.command(help=__doc__)
@params_option
@click.option("--out", default="data/eval/set", show_default=True, type=click.Path(file_okay=False))
@click.option("--references", default="data/eval/answers/dataset.json", show_default=True,
              help="Where the set's own reference outputs go (evaluate.reference: dataset).")
@click.option("--metrics", "metrics_path", default="metrics/eval_set.json", show_default=True)
def main(params_path, out, references, metrics_path):
    cfg = load_params(params_path, evaluate=EvaluateConfig).evaluate
    try:
        rows = load_eval_set(cfg.set)
    except (EvalSetError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    write_json(f"{out}/prompts.json", rows)
    write_json(references, reference_outputs(rows))
    by_dataset: dict[str, int] = {}
    for r in rows:
        by_dataset[r["dataset"]] = by_dataset.get(r["dataset"], 0) + 1
    write_json(metrics_path, {"source": cfg.set.source, "prompts": len(rows), "has_references": has_references(rows),
                              "by_dataset": dict(sorted(by_dataset.items())),
                              "instruction_chars": length_stats([len(r["instruction"]) for r in rows])})
    log.info("eval set: %d prompts from %s (%s)", len(rows), cfg.set.hub_dataset or cfg.set.path,
             "with reference outputs" if has_references(rows) else "no reference outputs")


if __name__ == "__main__":
    run_stage(main)

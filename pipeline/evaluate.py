"""Stage `evaluate@m`: a judge compares model m's answers with the reference answers (paper §3.1).

\b
    dvc repro evaluate@m1
    python pipeline/evaluate.py --name m1 --reference m0

Reads `evaluate.judge` (hf: a local model reads the verdict from its logits; vllm: the same through
vLLM, with the `vllm` section; openai: any OpenAI-compatible endpoint, key from the environment;
alpaca_eval: AlpacaEval's own annotator on that endpoint, its protocol and its cache
alpaca_eval_annotations.json), `evaluate.reference` (a model, default M0, or `dataset`: the set's
own references). Our judges judge every pair in both orders. Writes
data/eval/judged/<m>/annotations.json (AlpacaEval's annotation format), the verdict cache
judgements.jsonl next to it (a rerun after a crash asks only for what is missing), and
metrics/eval/<m>.json: win rate ± standard error, discrete and length-controlled win rates,
wins/ties/losses, failed verdicts, judge diagnostics. MLflow: an eval run with the annotations as an
artifact, and the win rates on the training run of model m.
"""

import json
import logging
from pathlib import Path

import click
import mlflow

from _common import load_params, params_option, run_stage
from humpback import tracking
from humpback.alpaca_eval_judge import AlpacaEvalError
from humpback.eval_sets import EvalSetError, read_difficulty, read_outputs
from humpback.evaluate import eval_metrics, judge_pairs, reference_annotations
from humpback.io import write_json
from humpback.prompts import read_template

log = logging.getLogger("humpback.evaluate")
WIN_RATES = ("win_rate", "standard_error", "discrete_win_rate", "length_controlled_winrate", "lc_standard_error")


@click.command(help=__doc__)
@params_option
@click.option("--name", required=True, help="The model to evaluate: m0, m1, base, ...")
@click.option("--answers", default=None, help="Its answers. Default: data/eval/answers/<name>.json")
@click.option("--reference", "reference_name", default=None, help="Default: evaluate.reference from params.")
@click.option("--set", "set_dir", default="data/eval/set", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, help="Default: data/eval/judged/<name>")
@click.option("--metrics", "metrics_path", default=None, help="Default: metrics/eval/<name>.json")
@click.option("--progress/--no-progress", default=True)
def main(params_path, name, answers, reference_name, set_dir, out, metrics_path, progress):
    cfg = load_params(params_path)
    ev = cfg.evaluate
    reference_name = reference_name or ev.reference
    out = Path(out or f"data/eval/judged/{name}")
    rows = json.loads(Path(set_dir, "prompts.json").read_text(encoding="utf-8"))
    try:
        outputs = read_outputs(answers or f"data/eval/answers/{name}.json", rows)
        references = read_outputs(f"data/eval/answers/{reference_name}.json", rows)
    except EvalSetError as exc:
        raise click.ClickException(str(exc)) from None
    template = read_template("judge", ev.judge.template)
    annotator = f"humpback_{ev.judge.kind}"
    if reference_name == name:
        result = None
        annotations = reference_annotations(rows, outputs, annotator)
    else:
        try:
            result = judge_pairs(rows, outputs, references, ev.judge, template, cfg.vllm, out, progress)
        except AlpacaEvalError as exc:
            raise click.ClickException(str(exc)) from None
        annotations = result.annotations
    try:
        difficulty = read_difficulty(ev.instruction_difficulty, rows) if ev.instruction_difficulty else None
    except EvalSetError as exc:
        raise click.ClickException(str(exc)) from None
    metrics = {"model": name, "reference": reference_name, "judge": ev.judge.kind, "judge_model": ev.judge.label,
               **eval_metrics(annotations, difficulty, ev.lc_splits)}
    if reference_name == name:
        metrics["is_reference"] = True
    write_json(out / "annotations.json", annotations)
    write_json(metrics_path or f"metrics/eval/{name}.json", metrics)

    model_dir = f"models/{name}"
    numbers = {k: metrics[k] for k in WIN_RATES if metrics.get(k) is not None}
    numbers.update({k: metrics[k] for k in ("n_wins", "n_wins_base", "n_draws", "n_total", "failed")})
    tags = {**tracking.base_tags([model_dir, f"data/eval/answers/{name}.json", f"data/eval/answers/{reference_name}.json"]),
            "humpback.role": "eval", "humpback.model": name, "humpback.reference": reference_name}
    if name[1:].isdigit() and name.startswith("m"):
        tags["humpback.iteration"] = name[1:]
    with tracking.stage_run(cfg, f"evaluate {name} vs {reference_name}", tags, outputs=[str(out)]):
        mlflow.log_params({"judge": ev.judge.kind, "judge_model": ev.judge.label, "reference": reference_name,
                           "eval_set": ev.set.source, "eval_prompts": len(rows), "inference_tag": ev.inference_tag,
                           **{f"generation.{k}": v for k, v in ev.generation.model_dump().items()}})
        mlflow.log_metrics({f"eval.{k}": v for k, v in numbers.items()})
        mlflow.log_artifact(str(out / "annotations.json"))
        tracking.log_to_parent({f"{name}.{k}": numbers.get(k) for k in WIN_RATES})
    if Path(model_dir).is_dir():
        run_id = tracking.model_run_id(cfg.mlflow.experiment, name, model_dir)
        if run_id:
            client = mlflow.MlflowClient()
            for k, v in numbers.items():
                client.log_metric(run_id, f"eval.{k}", v)
    extra = f", {result.requested} verdicts asked, {result.reused} reused, {result.failed} failed" if result else ""
    log.info("evaluate@%s vs %s: win rate %s ± %s (LC %s), %d/%d/%d wins/ties/losses%s", name, reference_name,
             metrics["win_rate"], metrics["standard_error"], metrics["length_controlled_winrate"], metrics["n_wins"],
             metrics["n_draws"], metrics["n_wins_base"], extra)


if __name__ == "__main__":
    run_stage(main)

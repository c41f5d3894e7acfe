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
wins/ties/losses, failed verdicts, judge diagnostics. Pairs the judge could not give a verdict (a
failing endpoint) make the stage exit 75 with its verdicts kept, unless `evaluate.max_failed_share`
accepts them (then `missing_accepted` in the metrics says how many): the next `dvc repro` asks only
for the missing ones. MLflow: an eval run with the annotations as an
artifact, and the win rates on the training run of model m.
"""

import logging
from pathlib import Path

import click

from _common import load_params, params_option, run_stage
from humpback.core.files import write_json
from humpback.core.incomplete import Incomplete
from humpback.evaluate.config import EvaluateConfig
from humpback.evaluate.judges.alpaca_eval import AlpacaEvalError
from humpback.evaluate.pairwise import judge_pairs, reference_annotations
from humpback.evaluate.sets import EvalSetError, read_difficulty, read_outputs, read_prompts
from humpback.evaluate.winrate import eval_metrics
from humpback.models.config import VLLMConfig
from humpback.prompts import read_template
from humpback.tracking.stage import stage_run

log = logging.getLogger("humpback.evaluate")
WIN_RATES = ("win_rate", "standard_error", "discrete_win_rate", "length_controlled_winrate", "lc_standard_error")


def check_complete(result, max_failed_share: float, name: str, out: Path) -> dict | None:
    """Raise :class:`Incomplete` where more pairs lack a verdict than ``evaluate.max_failed_share``
    allows (the verdicts so far stay in the cache for the rerun); else what was accepted, if anything."""
    missing, total = result.missing_pairs(), len(result.annotations)
    if not missing:
        return None
    why = "; ".join(result.reasons[:2]) or "no verdict"
    if missing > max_failed_share * total:
        raise Incomplete(f"evaluate@{name}: {missing} of {total} pairs have no verdict ({why}); the "
                         f"{result.requested + result.reused - result.failed} verdicts given are kept in {out}: "
                         "run `dvc repro` again to ask only for the missing ones (evaluate.max_failed_share "
                         "accepts a share)")
    log.warning("evaluate@%s: %d of %d pairs have no verdict (%s), accepted under evaluate.max_failed_share %s: "
                "the win rate is over the other %d", name, missing, total, why, max_failed_share, total - missing)
    return {"pairs": missing, "of": total, "max_failed_share": max_failed_share}


@click.command(help=__doc__)
@params_option
@click.option("--name", required=True, help="The model to evaluate: m0, m1, base, ...")
@click.option("--answers", default=None, help="Its answers. Default: data/eval/answers/<name>.json")
@click.option("--model", "model_dir", default=None,
              help="Its checkpoint, for lineage (its training run gets the win rates). Default: models/<name>")
@click.option("--reference", "reference_name", default=None, help="Default: evaluate.reference from params.")
@click.option("--set", "set_dir", default="data/eval/set", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, help="Default: data/eval/judged/<name>")
@click.option("--metrics", "metrics_path", default=None, help="Default: metrics/eval/<name>.json")
@click.option("--progress/--no-progress", default=True)
def main(params_path, name, answers, model_dir, reference_name, set_dir, out, metrics_path, progress):
    cfg = load_params(params_path, evaluate=EvaluateConfig, vllm=VLLMConfig)
    ev = cfg.evaluate
    reference_name = reference_name or ev.reference
    out = Path(out or f"data/eval/judged/{name}")
    try:
        rows = read_prompts(set_dir)
        outputs = read_outputs(answers or f"data/eval/answers/{name}.json", rows)
        references = read_outputs(f"data/eval/answers/{reference_name}.json", rows)
    except EvalSetError as exc:
        raise click.ClickException(str(exc)) from None
    template = read_template("judge", ev.judge.template)
    annotator = f"humpback_{ev.judge.kind}"
    if reference_name == name:
        result, accepted = None, None
        annotations = reference_annotations(rows, outputs, annotator)
    else:
        try:
            result = judge_pairs(rows, outputs, references, ev.judge, template, cfg.vllm, out, progress)
        except AlpacaEvalError as exc:
            raise click.ClickException(str(exc)) from None
        annotations = result.annotations
        accepted = check_complete(result, ev.max_failed_share, name, out)
    try:
        difficulty = read_difficulty(ev.instruction_difficulty, rows) if ev.instruction_difficulty else None
    except EvalSetError as exc:
        raise click.ClickException(str(exc)) from None
    metrics = {"model": name, "reference": reference_name, "judge": ev.judge.kind, "judge_model": ev.judge.label,
               **eval_metrics(annotations, difficulty, ev.lc_splits)}
    if reference_name == name:
        metrics["is_reference"] = True
    elif accepted:
        metrics["missing_accepted"] = accepted
    write_json(out / "annotations.json", annotations)
    write_json(metrics_path or f"metrics/eval/{name}.json", metrics)

    model_dir = model_dir or f"models/{name}"
    answers_of = [answers or f"data/eval/answers/{name}.json", f"data/eval/answers/{reference_name}.json"]
    with stage_run(cfg, f"evaluate {name} vs {reference_name}", role="eval", outputs=[str(out)],
                            inputs=[model_dir, *answers_of], model=(name, model_dir), prefix="eval.",
                            sections=["evaluate.reference", "evaluate.judge", "evaluate.max_failed_share",
                                      "evaluate.lc_splits",
                                      "evaluate.instruction_difficulty"],
                            tags={"humpback.reference": reference_name}) as run:
        run.finish(metrics, artifacts=[out / "annotations.json"], on_model_run=True,
                   parent={f"{name}.{k}": metrics.get(k) for k in WIN_RATES})
    extra = f", {result.requested} verdicts asked, {result.reused} reused, {result.failed} failed" if result else ""
    log.info("evaluate@%s vs %s: win rate %s ± %s (LC %s), %d/%d/%d wins/ties/losses%s", name, reference_name,
             metrics["win_rate"], metrics["standard_error"], metrics["length_controlled_winrate"], metrics["n_wins"],
             metrics["n_draws"], metrics["n_wins_base"], extra)


if __name__ == "__main__":
    run_stage(main)

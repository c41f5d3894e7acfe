"""AlpacaEval's own annotators as the judge (`evaluate.judge.kind: alpaca_eval`).

The `alpaca_eval` package runs one of its annotator configurations (its prompt, model, decoding and
parser) against any OpenAI-compatible endpoint, so a win rate is the one AlpacaEval would report
with that judge: `alpaca_eval_gpt4` is AlpacaEval 1.0's (the paper's table), and
`weighted_alpaca_eval_gpt4_turbo` is 2.0's (the public leaderboard's). The endpoint and its key come
from `evaluate.judge.openai` (base_url, api_key_env, timeout_s, max_retries, concurrency), the key
from the environment only; `evaluate.judge.alpaca_eval.model` replaces the configuration's model
for a local vLLM or llama.cpp server.

AlpacaEval's protocol, not ours: one verdict per pair, in the order AlpacaEval draws from the
instruction (our own judges ask both orders). Identical answers are a tie without asking, as in
our judges. Its annotation cache lives in the stage's output folder
(`alpaca_eval_annotations.json`, under DVC), never inside site-packages: a rerun after a crash asks
only for the pairs without a verdict.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path

import openai
import yaml

from humpback.core.files import write_json
from humpback.core.incomplete import Incomplete
from humpback.core.logs import tracebacks_as_one_line
from humpback.evaluate.judges.base import JudgeResult
from humpback.evaluate.judges.config import JudgeConfig

log = logging.getLogger(__name__)
CACHE_NAME = "alpaca_eval_annotations.json"


class AlpacaEvalError(RuntimeError):
    """The alpaca_eval judge cannot run as configured; the message says what to change."""


def _package():
    try:
        import alpaca_eval.constants as constants
        from alpaca_eval.annotators import PairwiseAnnotator
    except ImportError as exc:
        raise AlpacaEvalError("evaluate.judge.kind: alpaca_eval needs the alpaca_eval package "
                              f"(pip install 'humpback[alpaca-eval]'): {exc}") from None
    return constants, PairwiseAnnotator


def annotator_names() -> list[str]:
    """The annotator configurations the installed alpaca_eval ships."""
    constants, _ = _package()
    return sorted(p.parent.name for p in Path(constants.EVALUATORS_CONFIG_DIR).glob("*/configs.yaml"))


def annotator_config(cfg: JudgeConfig) -> dict:
    """The packaged configuration named by ``cfg.alpaca_eval.annotator`` with its prompt path made
    absolute, the model replaced where ``cfg.alpaca_eval.model`` is set, and chat messages forced
    (its prompts are ChatML, which a local server otherwise receives as raw completion text)."""
    constants, _ = _package()
    name = cfg.alpaca_eval.annotator
    path = Path(constants.EVALUATORS_CONFIG_DIR) / name / "configs.yaml"
    if not path.is_file():
        raise AlpacaEvalError(f"evaluate.judge.alpaca_eval.annotator: '{name}' is not an annotator configuration of "
                              f"the installed alpaca_eval; choose one of {annotator_names()}")
    config = yaml.safe_load(path.read_text())
    if len(config) != 1:
        raise AlpacaEvalError(f"{path}: {len(config)} annotators in one configuration; only single ones are supported")
    (key, single), = config.items()
    if single.get("fn_completions") != "openai_completions":
        raise AlpacaEvalError(f"evaluate.judge.alpaca_eval.annotator: '{name}' calls {single.get('fn_completions')}, "
                              "not an OpenAI-compatible endpoint; choose an OpenAI-based configuration")
    single = dict(single)
    single["prompt_template"] = str(Path(constants.EVALUATORS_CONFIG_DIR) / single["prompt_template"])
    kwargs = dict(single.get("completions_kwargs") or {})
    if cfg.alpaca_eval.model:
        kwargs["model_name"] = cfg.alpaca_eval.model
    kwargs.setdefault("requires_chatml", True)
    single["completions_kwargs"] = kwargs
    return {key: single}


def _cached_verdicts(cache_path: Path) -> set[tuple[str, str, str]]:
    """(instruction, output_1, output_2) of the pairs the cache already holds a verdict for."""
    if not cache_path.is_file():
        return set()
    try:
        rows = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s cannot be read: every pair is asked again", cache_path)
        return set()
    return {(r["instruction"], r["output_1"], r["output_2"]) for r in rows
            if isinstance(r, dict) and _number(r.get("preference")) is not None}


def _forget_failed(cache_path: Path) -> None:
    """alpaca_eval keeps failed verdicts in its cache as if answered: drop them (atomically), so the
    next run asks for them again instead of reusing a failure."""
    if not cache_path.is_file():
        return
    rows = json.loads(cache_path.read_text(encoding="utf-8"))
    kept = [r for r in rows if isinstance(r, dict) and _number(r.get("preference")) is not None
            and 0 <= r["preference"] <= 2]
    if len(kept) != len(rows):
        write_json(cache_path, kept)


def _number(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def judge_with_alpaca_eval(rows: list[dict], outputs: list[dict], references: list[dict], cfg: JudgeConfig,
                           out_dir: str | Path, annotator: str) -> JudgeResult:
    """AlpacaEval annotations of ``outputs`` (output_2) against ``references`` (output_1) in our
    annotation format; ``preference`` is AlpacaEval's (1 reference, 2 model, in between weighted)."""
    _, PairwiseAnnotator = _package()
    cache_path = Path(out_dir) / CACHE_NAME
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    asked = [i for i, (out, ref) in enumerate(zip(outputs, references))
             if out["output"].strip() != ref["output"].strip()]
    before = _cached_verdicts(cache_path)
    prefs: dict[int, float | None] = {}
    if asked:
        o = cfg.openai
        with tempfile.TemporaryDirectory(prefix="humpback-alpaca-eval-") as tmp:
            config_path = Path(tmp) / cfg.alpaca_eval.annotator / "configs.yaml"
            config_path.parent.mkdir(parents=True)
            config_path.write_text(yaml.safe_dump(annotator_config(cfg)))
            judge = PairwiseAnnotator(annotators_config=str(config_path), caching_path=str(cache_path), seed=0,
                                      is_avoid_reannotations=True)
            if judge.df_annotations is not None and "preference" in judge.df_annotations:
                # pandas reads a cache of integer rankings (1.0's parser) as an integer column, into which
                # alpaca_eval's own tie handling cannot write 1.5 under pandas 3
                judge.df_annotations["preference"] = judge.df_annotations["preference"].astype(float)
            try:
                with tracebacks_as_one_line():
                    annotated = _annotate(judge, rows, outputs, references, asked, o, tmp)
            except (openai.OpenAIError, json.JSONDecodeError) as exc:  # its loop retries neither a 5xx nor a malformed body
                _forget_failed(cache_path)
                kept = len(_cached_verdicts(cache_path) & {(rows[i]["instruction"], references[i]["output"],
                                                             outputs[i]["output"]) for i in asked})
                raise Incomplete(
                    f"the judge endpoint {o.base_url} failed after {o.max_retries} retries ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); {kept} of {len(asked)} verdicts are kept in {cache_path}: run `dvc repro` "
                    "again to ask only for the missing ones") from None
        _forget_failed(cache_path)
        for i, a in zip(asked, annotated):
            prefs[i] = _number(a.get("preference"))
            if prefs[i] is not None:  # as its cache holds it (pandas' to_json keeps 10 digits): a rerun reads the same
                prefs[i] = round(prefs[i], 10)
            if prefs[i] is not None and not 1 <= prefs[i] <= 2:  # 0: alpaca_eval's "identical answers"
                prefs[i] = 1.5 if prefs[i] == 0 else None
    annotations = []
    for i, (row, out, ref) in enumerate(zip(rows, outputs, references)):
        annotations.append({"instruction": row["instruction"], "output_1": ref["output"], "generator_1": ref["generator"],
                            "output_2": out["output"], "generator_2": out["generator"], "dataset": row["dataset"],
                            "index": row["index"], "annotator": annotator,
                            "preference": prefs[i] if i in prefs else 1.5})  # not asked: identical answers
    reused = sum((rows[i]["instruction"], references[i]["output"], outputs[i]["output"]) in before for i in asked)
    failed = sum(prefs.get(i) is None for i in asked)
    return JudgeResult(annotations, requested=len(asked) - reused, reused=reused, failed=failed,
                       reasons=("no parseable preference in the annotator's reply",) if failed else ())


def _annotate(judge, rows, outputs, references, asked: list[int], o, tmp: str) -> list[dict]:
    return judge.annotate_head2head(
        outputs_1=[{"instruction": rows[i]["instruction"], "output": references[i]["output"]} for i in asked],
        outputs_2=[{"instruction": rows[i]["instruction"], "output": outputs[i]["output"]} for i in asked],
        is_ordered=True,
        # the cache is saved after every chunk: a crash or a dead endpoint loses at most one chunk's verdicts
        chunksize=4 * o.concurrency,
        # the endpoint of evaluate.judge.openai; a client config file of alpaca_eval's own
        # (OPENAI_CLIENT_CONFIG_PATH) must not silently send the requests elsewhere
        client_config_path=str(Path(tmp) / "no-client-config.yaml"),
        openai_api_base=o.base_url, openai_api_keys=[os.environ.get(o.api_key_env) or "not-needed"],
        openai_organization_ids=None, num_procs=o.concurrency,
        # the openai client retries connection errors, timeouts, 429 and 5xx with exponential back-off
        # and jitter, waiting what a Retry-After header asks for (up to a minute); a request that still
        # fails ends the annotation (alpaca_eval raises it): a dead endpoint stops the stage early
        client_kwargs={"timeout": o.timeout_s, "max_retries": o.max_retries})

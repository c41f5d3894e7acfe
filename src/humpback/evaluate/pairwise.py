"""AlpacaEval-style evaluation: models answer the eval set (answer@m), a judge compares each answer
with the reference answer in both orders (evaluate@m), and the annotations give the win rates.

Annotations use AlpacaEval's format (``output_1`` = reference, ``output_2`` = model, ``preference``
1 = reference better, 2 = model better, 1.5 = tie), so its tools read them unchanged. Every single
verdict is appended to a cache file as soon as the judge returns it, keyed on the judge's identity,
the prompt and the two answers in the order shown: a crashed or interrupted run resumes where it
stopped, and a failed verdict is asked again next time (evaluate@m exits non-zero while any is
missing, beyond ``evaluate.max_failed_share``, so DVC never records it as done).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from humpback.core.keys import content_key
from humpback.core.units import KeyedLines
from humpback.evaluate.judges.base import Judge, JudgeResult, Verdict
from humpback.evaluate.judges.config import JudgeConfig
from humpback.models.config import VLLMConfig

log = logging.getLogger(__name__)


def verdict_key(identity: dict, instruction: str, output_a: str, output_b: str) -> str:
    return content_key({"judge": identity, "i": instruction, "a": output_a, "b": output_b}, length=24)


def judge_outputs(rows: list[dict], outputs: list[dict], references: list[dict], judge_factory: Callable[[], Judge],
                  identity: dict, cache_path: str | Path, annotator: str, progress: bool = True) -> JudgeResult:
    """AlpacaEval annotations for ``outputs`` against ``references``: each pair judged in both orders
    (reference first, then model first) and the two verdicts averaged, so position bias cancels; two
    verdicts that disagree make a tie. Identical answers are a tie without asking the judge."""
    from tqdm.auto import tqdm

    cache = KeyedLines(cache_path)
    keys: list[tuple[str, str] | None] = []
    todo: dict[str, tuple[str, str, str]] = {}
    for row, out, ref in zip(rows, outputs, references):
        if out["output"].strip() == ref["output"].strip():
            keys.append(None)
            continue
        ref_first = verdict_key(identity, row["instruction"], ref["output"], out["output"])
        model_first = verdict_key(identity, row["instruction"], out["output"], ref["output"])
        keys.append((ref_first, model_first))
        for key, pair in ((ref_first, (row["instruction"], ref["output"], out["output"])),
                          (model_first, (row["instruction"], out["output"], ref["output"]))):
            if cache.entries.get(key, {}).get("p_b") is None:
                todo[key] = pair
    failed: dict[str, str] = {}
    if todo:
        judge = judge_factory()
        order = list(todo)
        with tqdm(total=len(order), desc=f"judge {annotator}", unit="verdict", disable=not progress) as bar:
            def on_verdict(i: int, verdict: Verdict) -> None:
                if verdict.p_b is None:
                    failed[order[i]] = verdict.error or "failed"
                else:
                    cache.add(order[i], {"p_b": verdict.p_b, "raw": verdict.raw})
                bar.update(1)

            try:
                judge.judge([todo[k] for k in order], on_verdict)
            finally:
                cache.close()
    annotations = []
    used: set[str] = set()
    for row, out, ref, pair_keys in zip(rows, outputs, references, keys):
        ann = {"instruction": row["instruction"], "output_1": ref["output"], "generator_1": ref["generator"],
               "output_2": out["output"], "generator_2": out["generator"], "dataset": row["dataset"],
               "index": row["index"], "annotator": annotator}
        if pair_keys is None:
            ann.update(preference=1.5, preference_reference_first=1.5, preference_model_first=1.5)
        else:
            used.update(pair_keys)
            p_ref_first = cache.entries.get(pair_keys[0], {}).get("p_b")  # p(model better)
            p_model_first = cache.entries.get(pair_keys[1], {}).get("p_b")  # p(reference better)
            prefs = [None if p_ref_first is None else 1 + p_ref_first,
                     None if p_model_first is None else 2 - p_model_first]
            ann.update(preference=None if None in prefs else (prefs[0] + prefs[1]) / 2,
                       preference_reference_first=prefs[0], preference_model_first=prefs[1])
        annotations.append(ann)
    cache.prune(used)
    return JudgeResult(annotations, requested=len(todo), reused=len(used) - len(todo), failed=len(failed),
                       reasons=tuple(sorted(set(failed.values()))))


def judge_pairs(rows: list[dict], outputs: list[dict], references: list[dict], judge: JudgeConfig, template: str,
                vllm: VLLMConfig | None, out_dir: str | Path, progress: bool = True,
                judge_factory: Callable[[], Judge] | None = None) -> JudgeResult:
    """The configured judge's annotations of ``outputs`` against ``references``, cached in ``out_dir``:
    AlpacaEval's own annotator (kind alpaca_eval: its protocol and cache), or ours in both orders
    (:func:`judge_outputs`; ``judge_factory`` lets a caller keep one judge across calls)."""
    annotator = f"humpback_{judge.kind}"
    if judge.kind == "alpaca_eval":
        from humpback.evaluate.judges.alpaca_eval import judge_with_alpaca_eval

        return judge_with_alpaca_eval(rows, outputs, references, judge, out_dir, annotator)
    from humpback.evaluate.judges.factory import judge_identity, make_judge

    return judge_outputs(rows, outputs, references, judge_factory or (lambda: make_judge(judge, template, vllm)),
                         judge_identity(judge, template, vllm), Path(out_dir) / "judgements.jsonl", annotator,
                         progress)


def reference_annotations(rows: list[dict], outputs: list[dict], annotator: str) -> list[dict]:
    """The reference against itself: every preference is a tie by construction (AlpacaEval does the same)."""
    return [{"instruction": r["instruction"], "output_1": o["output"], "generator_1": o["generator"],
             "output_2": o["output"], "generator_2": o["generator"], "dataset": r["dataset"], "index": r["index"],
             "annotator": annotator, "preference": 1.5} for r, o in zip(rows, outputs)]

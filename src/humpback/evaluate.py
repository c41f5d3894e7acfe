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

import hashlib
import json
import logging
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from humpback.cluster import Job, Unit, run_units
from humpback.config import EvaluateConfig, JudgeConfig, PromptsConfig, RayConfig, VLLMConfig
from humpback.eval_sets import model_outputs
from humpback.judges import Judge, Verdict
from humpback.models.generation import EngineSpec
from humpback.prompts import forward_messages
from humpback.stats import length_stats
from humpback.winrate import length_controlled_win_rate, win_rate

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- answer@m
@dataclass
class AnswerJob(Job):
    """Eval prompts (instruction) -> outputs (settings only: it may run on a Ray worker)."""

    spec: EngineSpec
    cfg: EvaluateConfig
    prompts: PromptsConfig

    def setup(self) -> None:
        self.engine = self.spec.generator()

    def run(self, rows: pa.Table, key: str, progress) -> pa.Table:
        convs = [forward_messages(i, self.cfg.inference_tag, self.prompts) for i in rows["instruction"].to_pylist()]
        texts = self.engine.generate(convs, self.spec.sampling(), progress)  # the section's seed
        return pa.table({"output": [t.strip() for t in texts]})


def answer(rows: list[dict], spec: EngineSpec, cfg: EvaluateConfig, prompts: PromptsConfig,
           generator: str, progress: bool = True, ray: RayConfig = RayConfig()) -> list[dict]:
    """Every prompt answered once, with the inference tag, in AlpacaEval's model-outputs format.
    One unit: an eval set is small, and one engine call keeps the answers those of a single run."""
    from tqdm.auto import tqdm

    prompts_table = pa.table({"instruction": [r["instruction"] for r in rows]})
    texts: list[str] = []
    with tqdm(total=len(rows), desc=f"answer {generator}", unit="prompt", disable=not progress) as bar:
        run_units(AnswerJob(spec.resolved(), cfg, prompts),
                  [Unit(generator, "", len(rows), lambda: prompts_table, lambda t: texts.extend(t["output"].to_pylist()))],
                  ray, bar.update)
    return model_outputs(rows, texts, generator)


# --------------------------------------------------------------------------------------- evaluate@m
class JudgementCache:
    """Append-only JSON lines of finished verdicts; a torn last line (crash mid-write) is ignored."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        self._fh = None

    def add(self, key: str, verdict: Verdict) -> None:
        entry = {"key": key, "p_b": verdict.p_b, "raw": verdict.raw}
        self.entries[key] = entry
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def compact(self, keep: set[str]) -> None:
        """Rewrite the file with the verdicts in use only, so it equals a from-scratch run's."""
        self.close()
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            for key in sorted(keep & set(self.entries)):
                fh.write(json.dumps(self.entries[key], ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def verdict_key(identity: dict, instruction: str, output_a: str, output_b: str) -> str:
    blob = json.dumps({"judge": identity, "i": instruction, "a": output_a, "b": output_b}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class JudgeResult:
    annotations: list[dict]
    requested: int  # verdicts asked of the judge in this run
    reused: int  # verdicts taken from the cache
    failed: int  # verdicts the judge could not give (their pairs have no preference)
    reasons: tuple[str, ...] = ()  # why, one entry per distinct reason

    def missing_pairs(self) -> int:
        return sum(a["preference"] is None for a in self.annotations)


def judge_outputs(rows: list[dict], outputs: list[dict], references: list[dict], judge_factory: Callable[[], Judge],
                  identity: dict, cache_path: str | Path, annotator: str, progress: bool = True) -> JudgeResult:
    """AlpacaEval annotations for ``outputs`` against ``references``: each pair judged in both orders
    (reference first, then model first) and the two verdicts averaged, so position bias cancels; two
    verdicts that disagree make a tie. Identical answers are a tie without asking the judge."""
    from tqdm.auto import tqdm

    cache = JudgementCache(cache_path)
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
                    cache.add(order[i], verdict)
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
    cache.compact(used)
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
        from humpback.alpaca_eval_judge import judge_with_alpaca_eval

        return judge_with_alpaca_eval(rows, outputs, references, judge, out_dir, annotator)
    from humpback.judges import judge_identity, make_judge

    return judge_outputs(rows, outputs, references, judge_factory or (lambda: make_judge(judge, template, vllm)),
                         judge_identity(judge, template, vllm), Path(out_dir) / "judgements.jsonl", annotator,
                         progress)


def reference_annotations(rows: list[dict], outputs: list[dict], annotator: str) -> list[dict]:
    """The reference against itself: every preference is a tie by construction (AlpacaEval does the same)."""
    return [{"instruction": r["instruction"], "output_1": o["output"], "generator_1": o["generator"],
             "output_2": o["output"], "generator_2": o["generator"], "dataset": r["dataset"], "index": r["index"],
             "annotator": annotator, "preference": 1.5} for r, o in zip(rows, outputs)]


def _finite(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def eval_metrics(annotations: list[dict], difficulty: dict[int, float] | None = None, n_splits: int = 5) -> dict:
    """Win rate (± standard error), discrete win rate, wins/ties/losses, the length-controlled win
    rate, judge diagnostics (order agreement, position bias, agreement with a length-only judge) and
    answer lengths."""
    valid = [a for a in annotations if a["preference"] is not None and 1 <= a["preference"] <= 2]
    metrics = win_rate([a["preference"] for a in annotations])
    if valid and len({a["generator_1"] for a in valid} | {a["generator_2"] for a in valid}) > 1:
        metrics.update(length_controlled_win_rate(
            [a["preference"] for a in valid], [len(a["output_2"]) for a in valid], [len(a["output_1"]) for a in valid],
            [difficulty[a["index"]] for a in valid] if difficulty else None, n_splits))
    else:  # the reference itself
        metrics.update(length_controlled_winrate=metrics["win_rate"], lc_standard_error=0.0 if valid else None)
    both = [a for a in valid if a.get("preference_reference_first") is not None
            and a.get("preference_model_first") is not None and a["output_1"].strip() != a["output_2"].strip()]
    if both:
        agree = sum((a["preference_reference_first"] - 1.5) * (a["preference_model_first"] - 1.5) > 0 for a in both)
        # p(first shown answer better) averaged over both orders: 0.5 means no position bias
        first = [2 - a["preference_reference_first"] for a in both] + [a["preference_model_first"] - 1 for a in both]
        metrics["judge_order_agreement"] = round(agree / len(both), 4)
        metrics["judge_first_position_preference"] = round(statistics.fmean(first), 4)
    # a length-only judge prefers the longer answer: how often does the judge's decided verdict agree
    # with it, where the lengths differ (near 1.0: the win rate is mostly a length contest)
    decided = [a for a in valid if a["preference"] != 1.5 and len(a["output_1"]) != len(a["output_2"])]
    if decided:
        longer = sum((a["preference"] > 1.5) == (len(a["output_2"]) > len(a["output_1"])) for a in decided)
        metrics["judge_length_agreement"] = round(longer / len(decided), 4)
    metrics["failed"] = len(annotations) - len(valid)
    metrics["model_output_chars"] = length_stats([len(a["output_2"]) for a in annotations])
    metrics["reference_output_chars"] = length_stats([len(a["output_1"]) for a in annotations])
    return {k: _finite(round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}

"""The research report: win rate per iteration, held-out likelihood per model, score histograms per
curator, kept-set sizes per threshold, and the data-scaling fit (paper Fig. 4 / Table 3), as PNG
plots and one JSON summary.

Everything is read from the small metric files the stages write, so the report is cheap to redo
and reads the same from any DVC experiment.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI


# The bar a judge passes before its win rate is read as a measurement (README, "Judge reliability").
# Both orders of every pair are judged: a coin flip gives the same verdict in both about half the
# time, GPT-4 about two times in three (MT-Bench, Zheng et al. 2023, pairwise consistency 65%).
MIN_ORDER_AGREEMENT = 0.6


MAX_POSITION_BIAS = 0.1  # how far the preference for the first-shown answer may stray from 0.5


MAX_FAILED_SHARE = 0.1  # verdicts that did not parse


def judge_reliability(ev: dict) -> dict | None:
    """Whether the judge behind one model's win rate passes the bar, with the reasons it fails;
    None where there is nothing to tell (the reference against itself, or one order judged)."""
    agree, first = ev.get("judge_order_agreement"), ev.get("judge_first_position_preference")
    if ev.get("is_reference") or agree is None or first is None:
        return None
    reasons = []
    if agree < MIN_ORDER_AGREEMENT:
        reasons.append(f"order agreement {agree:.2f} < {MIN_ORDER_AGREEMENT:.2f} (a coin flip: 0.50)")
    if abs(first - 0.5) > MAX_POSITION_BIAS:
        reasons.append(f"first-position preference {first:.2f} outside "
                       f"{0.5 - MAX_POSITION_BIAS:.2f}-{0.5 + MAX_POSITION_BIAS:.2f}")
    total, failed = ev.get("n_total") or 0, ev.get("failed") or 0
    if total and failed / total > MAX_FAILED_SHARE:
        reasons.append(f"{failed} of {total} verdicts unparsed (over {MAX_FAILED_SHARE:.0%})")
    return {"reliable": not reasons, "reasons": reasons}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def collect(metrics_dir: str | Path, models: list[str], iterations: list[int]) -> dict:
    """The numbers behind the report, from metrics/eval, metrics/train, metrics/score,
    metrics/curate and metrics/scaling.json."""
    metrics_dir = Path(metrics_dir)
    evals = {m: e for m in models if (e := _read_json(metrics_dir / "eval" / f"{m}.json"))}
    trained = ["backward", "m0"] + [f"m{i}" for i in iterations]
    train = {m: t for m in trained if (t := _read_json(metrics_dir / "train" / f"{m}.json"))}
    curate = {i: c for i in iterations if (c := _read_json(metrics_dir / "curate" / f"iter{i}.json"))}
    score = {i: c for i in iterations if (c := _read_json(metrics_dir / "score" / f"iter{i}.json"))}
    curves = {}
    for i in iterations:
        path = metrics_dir / "curate" / f"iter{i}_thresholds.csv"
        if path.exists():
            with open(path, newline="") as fh:
                curves[i] = list(csv.DictReader(fh))
    return {"eval": evals, "train": train, "curate": curate, "score": score, "curves": curves,
            "augment": _read_json(metrics_dir / "augment.json"), "scaling": _read_json(metrics_dir / "scaling.json")}


def heldout_nll(train: dict) -> dict:
    """NLL per target token on the held-out seed pairs (lower is better): the backward direction
    (instruction | response) for the base model and M_yx, the forward one (response | instruction)
    for the base model and M0..Mn. Models trained before this was measured are left out."""
    out: dict = {"backward": {}, "forward": {}}
    for name, t in train.items():
        h = t.get("heldout") or {}
        if h.get("nll") is None:
            continue
        direction = out["backward" if name == "backward" else "forward"]
        direction.setdefault("base", h.get("nll_base"))
        direction[name] = h["nll"]
    return {k: v for k, v in out.items() if v}


def summary(data: dict) -> dict:
    evals, curate = data["eval"], data["curate"]
    out = {
        "win_rate": {m: e.get("win_rate") for m, e in evals.items()},
        "standard_error": {m: e.get("standard_error") for m, e in evals.items()},
        "lc_win_rate": {m: e.get("length_controlled_winrate") for m, e in evals.items()},
        "reference": next((e["reference"] for e in evals.values()), None),
        "kept": {f"iter{i}": c["kept"] for i, c in curate.items()},
        "threshold": next((c["threshold"] for c in curate.values()), None),
    }
    if nll := heldout_nll(data.get("train") or {}):
        out["heldout_nll"] = nll
    # does curator M_{i-1} rank real pairs above broken ones (0.5: it cannot tell them apart)
    auc = {f"iter{i}": c["curator_check"]["auc"] for i, c in (data.get("score") or {}).items()
           if (c.get("curator_check") or {}).get("auc") is not None}
    if auc:
        out["curator_auc"] = auc
    # candidates and curated pairs whose instruction reads as a request (augment/form.py)
    well_formed = {"candidates": (data.get("augment") or {}).get("well_formed"),
                   **{f"iter{i}": c.get("well_formed") for i, c in curate.items()}}
    if any(v is not None for v in well_formed.values()):
        out["well_formed"] = well_formed
    verdicts = {m: r for m, e in evals.items() if (r := judge_reliability(e)) is not None}
    out["judge_reliable"] = {m: r["reliable"] for m, r in verdicts.items()}
    out["judge_unreliable_because"] = {m: "; ".join(r["reasons"]) for m, r in verdicts.items() if r["reasons"]}
    judged = {m: w for m, w in out["win_rate"].items() if w is not None and not evals[m].get("is_reference")}
    if judged:
        out["best_model"] = max(judged, key=judged.get)
    scaling = data.get("scaling") or {}
    if scaling.get("alpha") is not None:
        out["scaling_alpha"] = scaling["alpha"]
    return out


def win_rate_rows(summary_: dict) -> list[dict]:
    """Rows of the win-rate plot for `dvc plots diff` (one per model)."""
    return [{"model": m, "win_rate": w, "lc_win_rate": summary_["lc_win_rate"].get(m)}
            for m, w in summary_["win_rate"].items()]

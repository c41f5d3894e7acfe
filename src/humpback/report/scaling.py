"""The paper's data-efficiency fit (§3.3, Fig. 4, Table 3): win rate = alpha * ln N + C over the
sizes N of `scaling.sizes`, read from the metrics their train and evaluate stages wrote."""

from __future__ import annotations

import json
import math
from pathlib import Path


class MissingPoint(FileNotFoundError):
    """A size's train or evaluate metrics are not there yet."""


POINT_KEYS = ("win_rate", "standard_error", "length_controlled_winrate", "n_total", "failed")


def fit_log_curve(points: list[dict]) -> dict:
    """Least squares of win rate on ln N: alpha (slope), its standard error, C and r^2."""
    from scipy.stats import linregress

    pts = [(math.log(p["n"]), p["win_rate"]) for p in points if p.get("win_rate") is not None]
    if len(pts) < 2:
        return {"alpha": None}
    fit = linregress(*zip(*pts))
    stderr = fit.stderr if len(pts) > 2 else None
    return {"alpha": round(fit.slope, 4), "alpha_stderr": None if stderr is None else round(stderr, 4),
            "intercept": round(fit.intercept, 4), "r2": round(fit.rvalue ** 2, 4) if len(pts) > 2 else None}


def read_point(metrics_dir: Path, n: int) -> dict:
    """One size's numbers from the metrics its train and evaluate stages wrote."""
    files = {"train": metrics_dir / "train" / f"scaling_n{n}.json", "eval": metrics_dir / "eval" / f"scaling_n{n}.json"}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise MissingPoint(f"scaling size {n}: {', '.join(missing)} missing; run `dvc repro scaling` "
                                   "(it builds scale_train@N, scale_answer@N and scale_evaluate@N first)")
    train, judged = (json.loads(f.read_text(encoding="utf-8")) for f in files.values())
    return {"n": n, "curated_pairs": train["curated_pairs"], "examples": train["examples"], "steps": train["steps"],
            "final_loss": train["final_loss"], "heldout_nll": train["heldout"].get("nll"),
            **{k: judged.get(k) for k in POINT_KEYS}}

"""Win rates from pairwise annotations, computed exactly as AlpacaEval computes them.

A preference is AlpacaEval's: 1 = the reference is better, 2 = the model is better, 1.5 = tie (0 is
also read as a tie), anything in between a weighted verdict; missing or out-of-range values are
dropped. ``tests/test_winrate.py`` checks every number against the ``alpaca_eval`` package.

The length-controlled win rate follows AlpacaEval 2.0's GLM: a logistic regression of the
preference on tanh(standardised length difference) (+ instruction difficulty when available) + a
model term, fitted with 5-fold cross-validated L1 (liblinear) on soft labels, then predicted with
the length difference set to zero. AlpacaEval downloads instruction difficulties from the hub and
regularises towards gamed baselines; here the difficulty term is optional and there is no
regularisation to baselines (its ``length_controlled_minimal`` / ``_noreg`` forms), so it runs offline.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence

import numpy as np

from humpback.core.stats import length_stats

log = logging.getLogger(__name__)


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


def _valid(preferences: Sequence[float | None]) -> np.ndarray:
    p = np.array([np.nan if x is None else float(x) for x in preferences], dtype=float)
    p[p == 0] = 1.5
    return p[(p >= 1) & (p <= 2)]


def _describe(p: np.ndarray, n_draws: int) -> dict:
    x = p - 1
    n = len(x)
    return {
        "win_rate": float(x.mean() * 100) if n else math.nan,
        "standard_error": float(x.std(ddof=1) / math.sqrt(n) * 100) if n > 1 else math.nan,
        "n_wins": int((x > 0.5).sum()),
        "n_wins_base": int((x < 0.5).sum()),
        "n_draws": n_draws,
        "n_total": n,
    }


def win_rate(preferences: Sequence[float | None]) -> dict:
    """win_rate and standard_error (percent), wins/losses/draws, n, and discrete_win_rate (each
    preference rounded to win/tie/loss): the fields and values of ``alpaca_eval``'s ``get_winrate``."""
    p = _valid(preferences)
    out = _describe(p, int((p == 1.5).sum()))
    discrete = np.where(p == 1.5, 1.5, np.round(p))
    out["discrete_win_rate"] = _describe(discrete, int((discrete == 1.5).sum()))["win_rate"]
    return out


def length_controlled_win_rate(preferences: Sequence[float], model_lengths: Sequence[int],
                               reference_lengths: Sequence[int], difficulty: Sequence[float] | None = None,
                               n_splits: int = 5) -> dict:
    """AlpacaEval 2.0's length-controlled win rate and its standard error (percent).

    ``preferences`` must all be valid (1..2); lengths are in characters, as in AlpacaEval.
    """
    import sklearn
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GroupKFold

    pref = np.asarray(preferences, dtype=float)
    pref = np.where(pref == 0, 1.5, pref) - 1  # P(model better), in [0, 1]
    n = len(pref)
    delta = np.asarray(reference_lengths, dtype=float) - np.asarray(model_lengths, dtype=float)
    sd = delta.std(ddof=1) if n > 1 else 0.0
    if n < n_splits or not np.isfinite(sd) or sd == 0:
        # nothing to fit (identical lengths or too few pairs): the raw win rate is already length-free
        return {"length_controlled_winrate": float(pref.mean() * 100) if n else math.nan,
                "lc_standard_error": float(pref.std(ddof=1) / math.sqrt(n) * 100) if n > 1 else math.nan}
    # the design matrix in AlpacaEval's column order; the constant column is the model term
    columns = [np.tanh(delta / sd)] + ([np.asarray(difficulty, dtype=float)] if difficulty is not None else [])
    X = np.column_stack([*columns, np.ones(n)])
    X_test = np.column_stack([np.zeros(n), *columns[1:], np.ones(n)])
    # soft labels: every row twice, as y=1 weighted p and y=0 weighted 1-p (same fold: grouped)
    X_dup, y_dup = np.vstack([X, X]), np.concatenate([np.ones(n), np.zeros(n)])
    weight = np.concatenate([pref, 1 - pref])
    groups = np.concatenate([np.arange(n), np.arange(n)])

    def soft_log_loss(y_true, y_pred, true_prob):
        target = np.where(y_true == 1, true_prob, 1 - true_prob)
        y_pred = np.clip(y_pred, 1e-15, 1 - 1e-15)
        return -np.mean(target * np.log(y_pred) + (1 - target) * np.log(1 - y_pred))

    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(soft_log_loss, response_method="predict_proba",
                             greater_is_better=False).set_score_request(true_prob=True)
        model = LogisticRegressionCV(cv=GroupKFold(n_splits=n_splits), scoring=scorer, random_state=123,
                                     solver="liblinear", l1_ratios=(1.0,), fit_intercept=False,
                                     use_legacy_attributes=False)
        model.set_fit_request(sample_weight=True)
        model.fit(X_dup, y_dup, sample_weight=weight, groups=groups, true_prob=np.concatenate([pref, 1 - pref]))
    predicted = model.predict_proba(X_test)[:, 1]
    return {"length_controlled_winrate": float(predicted.mean() * 100),
            "lc_standard_error": float(predicted.std(ddof=1) / math.sqrt(n) * 100)}

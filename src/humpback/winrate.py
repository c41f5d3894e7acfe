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

import math
from collections.abc import Sequence

import numpy as np


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

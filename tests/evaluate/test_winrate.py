"""Win rates: hand-checked numbers, and parity with the `alpaca_eval` package on the same annotations."""

import json
import math
import warnings

import numpy as np
import pytest

from conftest import FIXTURES
from humpback.evaluate.winrate import length_controlled_win_rate, win_rate

FIXTURE = FIXTURES / "annotations.json"


def test_win_rate_by_hand():
    # wins 2, 2; loss 1; ties 1.5 and 0 (AlpacaEval's legacy tie); a weighted 1.75; a failed None
    m = win_rate([2, 2, 1, 1.5, 0, 1.75, None])
    x = np.array([1, 1, 0, 0.5, 0.5, 0.75])
    assert m["n_total"] == 6 and m["n_wins"] == 3 and m["n_wins_base"] == 1 and m["n_draws"] == 2
    assert m["win_rate"] == pytest.approx(x.mean() * 100)
    assert m["standard_error"] == pytest.approx(x.std(ddof=1) / math.sqrt(6) * 100)
    # discrete: 1.75 rounds to a win -> (3 wins + 2 ties / 2) / 6
    assert m["discrete_win_rate"] == pytest.approx(4 / 6 * 100)


def test_win_rate_drops_out_of_range_and_handles_empty():
    assert win_rate([2, 3, -1])["n_total"] == 1
    empty = win_rate([None])
    assert empty["n_total"] == 0 and math.isnan(empty["win_rate"])


def _alpaca_eval():
    pytest.importorskip("alpaca_eval", reason="alpaca_eval is in the test extras")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def test_win_rate_matches_alpaca_eval_get_winrate():
    _alpaca_eval()
    from alpaca_eval.metrics import get_winrate

    annotations = json.loads(FIXTURE.read_text())
    theirs = get_winrate([{**a, "preference": np.nan if a["preference"] is None else a["preference"]}
                          for a in annotations])
    ours = win_rate([a["preference"] for a in annotations])
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        assert value == pytest.approx(float(theirs[key]), abs=1e-9), key


@pytest.mark.parametrize("with_difficulty", [False, True])
def test_length_controlled_matches_alpaca_eval_glm(with_difficulty, tmp_path, monkeypatch):
    _alpaca_eval()
    import pandas as pd
    from alpaca_eval.metrics import glm_winrate

    annotations = [a for a in json.loads(FIXTURE.read_text()) if a["preference"] is not None]
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 1, len(annotations) + 1)
    # AlpacaEval downloads instruction difficulties from the hub; hand it a local file instead
    csv = tmp_path / "df_gamed.csv"
    pd.DataFrame({"model": "x", "index": range(len(difficulty)), "instruction_difficulty": difficulty}).to_csv(csv, index=False)
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **_: str(csv))
    glm = "length_controlled_noreg" if with_difficulty else "length_controlled_minimal"
    theirs = glm_winrate.get_length_controlled_winrate(pd.DataFrame(annotations), glm_name=glm, save_weights_dir=None)
    ours = length_controlled_win_rate(
        [a["preference"] for a in annotations], [len(a["output_2"]) for a in annotations],
        [len(a["output_1"]) for a in annotations],
        [difficulty[a["index"]] for a in annotations] if with_difficulty else None)
    assert ours["length_controlled_winrate"] == pytest.approx(theirs["length_controlled_winrate"], abs=1e-6)
    assert ours["lc_standard_error"] == pytest.approx(theirs["lc_standard_error"], abs=1e-6)


def test_length_control_discounts_a_length_bias():
    """A judge that simply prefers the longer answer: the model wins by being longer, LC pulls it to ~50."""
    rng = np.random.default_rng(1)
    ref = rng.integers(100, 400, 200)
    model = ref + rng.integers(-100, 500, 200)
    prefs = np.where(model > ref, 1.9, 1.1)
    raw = win_rate(prefs)["win_rate"]
    lc = length_controlled_win_rate(prefs, model, ref)["length_controlled_winrate"]
    assert raw > 65 and abs(lc - 50) < abs(raw - 50) / 2

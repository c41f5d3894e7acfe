"""The report's PNG plots (dvc plots show renders blank offline)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402

from humpback.report.summary import collect, heldout_nll, judge_reliability, summary

matplotlib.use("Agg")  # files only: no display on servers and CI


SCORE_LABELS = ["1", "2", "3", "4", "5", "none"]


def plot_win_rates(data: dict, path: Path) -> Path:
    evals = data["eval"]
    models = list(evals)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = range(len(models))
    wr = [evals[m].get("win_rate") or math.nan for m in models]
    se = [evals[m].get("standard_error") or 0 for m in models]
    lc = [evals[m].get("length_controlled_winrate") or math.nan for m in models]
    ax.errorbar(x, wr, yerr=se, marker="o", capsize=4, label="win rate ± s.e.")
    ax.plot(x, lc, marker="s", linestyle="--", label="length-controlled")
    ax.axhline(50, color="grey", linewidth=0.8)
    ax.set_xticks(list(x), models)
    ax.set_ylim(0, 100)
    reference = next((e["reference"] for e in evals.values()), "?")
    verdicts = [r for e in evals.values() if (r := judge_reliability(e)) is not None]
    title = f"Win rate per model against {reference}"
    if any(not r["reliable"] for r in verdicts):
        title += "\n(the judge fails the reliability bar: not a measurement)"
    return _finish(fig, ax, path, "model", "% wins vs reference", title)


def plot_heldout_nll(nll: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = ["base"] + [m for d in ("backward", "forward") for m in nll.get(d, {}) if m != "base"]
    width = 0.4
    for j, (direction, label) in enumerate([("forward", "response | instruction"),
                                            ("backward", "instruction | response")]):
        values = nll.get(direction, {})
        xs = [k + (j - 0.5) * width for k, m in enumerate(names) if m in values]
        if xs:
            ax.bar(xs, [values[m] for m in names if m in values], width, label=label)
    ax.set_xticks(range(len(names)), names)
    return _finish(fig, ax, path, "model", "NLL per target token (lower is better)",
                   "Held-out seed pairs: likelihood per model")


def plot_scores(data: dict, path: Path) -> Path:
    curate = data["curate"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    width = 0.8 / max(len(curate), 1)
    for j, (i, c) in enumerate(sorted(curate.items())):
        counts = [c["scores"].get(k, 0) for k in SCORE_LABELS[:5]] + [c.get("unparseable", 0)]
        ax.bar([k + j * width for k in range(len(SCORE_LABELS))], counts, width,
               label=f"iteration {i} (curator m{i - 1})")
    ax.set_xticks([k + width * (len(curate) - 1) / 2 for k in range(len(SCORE_LABELS))], SCORE_LABELS)
    return _finish(fig, ax, path, "curator score (argmax)", "candidate pairs", "Score distribution per curator")


def plot_kept(data: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, rows in sorted(data["curves"].items()):
        # the curve of what selection compares: the argmax score or the expected score
        compared = data["curate"].get(i, {}).get("compared", "score")
        column = f"kept_{compared}"
        pts = [(float(r["threshold"]), int(r[column])) for r in rows if r[column] != ""]
        ax.plot(*zip(*pts), marker=".", label=f"iteration {i} ({column.removeprefix('kept_').replace('_', ' ')})")
    threshold = next((c["threshold"] for c in data["curate"].values()), None)
    if threshold is not None:
        ax.axvline(threshold, color="grey", linestyle=":", label=f"threshold {threshold}")
    return _finish(fig, ax, path, "threshold k", "pairs kept (|A_k|)", "Kept-set size per threshold")


def plot_scaling(scaling: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    pts = [(p["n"], p["win_rate"]) for p in scaling["points"] if p.get("win_rate") is not None]
    ax.semilogx(*zip(*pts), marker="o", linestyle="", base=2, label="measured")
    if scaling.get("alpha") is not None:
        ns = [pts[0][0], pts[-1][0]]
        ax.semilogx(ns, [scaling["alpha"] * math.log(n) + scaling["intercept"] for n in ns], base=2,
                    label=f"fit: {scaling['alpha']:.2f} ln N + {scaling['intercept']:.1f}")
    return _finish(fig, ax, path, "curated training pairs N", "win rate %", "Data-scaling efficiency")


def _finish(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # no timestamp in the PNG: the same numbers give the same bytes, so DVC sees no change
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def write_report(metrics_dir: str | Path, plots_dir: str | Path, models: list[str], iterations: list[int]) -> tuple[dict, list[Path]]:
    data = collect(metrics_dir, models, iterations)
    plots_dir = Path(plots_dir)
    made = []
    if data["eval"]:
        made.append(plot_win_rates(data, plots_dir / "win_rate.png"))
    if nll := heldout_nll(data.get("train") or {}):
        made.append(plot_heldout_nll(nll, plots_dir / "heldout_nll.png"))
    if data["curate"]:
        made.append(plot_scores(data, plots_dir / "scores.png"))
    if data["curves"]:
        made.append(plot_kept(data, plots_dir / "kept_by_threshold.png"))
    scaling = data.get("scaling") or {}
    if scaling.get("points"):
        made.append(plot_scaling(scaling, plots_dir / "scaling.png"))
    return summary(data), made

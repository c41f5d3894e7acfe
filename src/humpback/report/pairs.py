"""The data a person reads: the best and the worst curated pairs of each iteration, as Markdown
tables (instruction, the start of the response, score), beside the plots and in `humpback metrics`.

A curator's numbers (kept share, ROC AUC, well-formed share) say how much it kept; these rows show
what: the pairs at the top of A_k and the ones that only just passed the threshold.
"""

from __future__ import annotations

from pathlib import Path

RESPONSE_CHARS = 160  # the start of the response: enough to see what the text is about
INSTRUCTION_CHARS = 200


def read_curated(curated_dir: str | Path, iterations: list[int]) -> dict[int, list[dict]]:
    """The curated pairs of each iteration whose set exists (``<dir>/iter<i>/*.parquet``)."""
    from humpback.core.shards import read_table

    out = {}
    for i in iterations:
        folder = Path(curated_dir) / f"iter{i}"
        if folder.is_dir() and any(folder.glob("*.parquet")):
            out[i] = read_table(folder, ["id", "instruction", "response", "score", "expected_score"]).to_pylist()
    return out


def _rank(row: dict) -> tuple:
    """Best first: the expected score where the logits scorer gave one, else the score; id breaks ties."""
    value = row.get("expected_score")
    value = row.get("score") if value is None else value
    return (-(value if value is not None else -1), row["id"])


def best_and_worst(rows: list[dict], n: int) -> tuple[list[dict], list[dict]]:
    """The ``n`` best pairs and the ``n`` worst, worst last; a set of up to 2n pairs is shown whole
    (as best), so no pair appears twice."""
    ranked = sorted(rows, key=_rank)
    if len(ranked) <= 2 * n:
        return ranked, []
    return ranked[:n], ranked[-n:]


def _cell(text, limit: int) -> str:
    text = " ".join(str(text or "").split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(rows: list[dict]) -> list[str]:
    lines = ["| score | expected | instruction | response (start) |", "| --- | --- | --- | --- |"]
    for r in rows:
        expected = r.get("expected_score")
        lines.append(f"| {r.get('score') if r.get('score') is not None else '-'} | "
                     f"{f'{expected:.2f}' if expected is not None else '-'} | "
                     f"{_cell(r['instruction'], INSTRUCTION_CHARS)} | {_cell(r['response'], RESPONSE_CHARS)} |")
    return lines


def pairs_markdown(curated: dict[int, list[dict]], n: int = 5) -> str:
    """One section per iteration: its best ``n`` curated pairs and its worst ``n``."""
    lines = ["# Curated pairs: the best and the worst of each iteration", ""]
    if not curated:
        lines.append("No curated set yet (run `dvc repro select`).")
    for i, rows in sorted(curated.items()):
        best, worst = best_and_worst(rows, n)
        lines += [f"## Iteration {i}: {len(rows)} pairs kept (`data/curated/iter{i}`)", ""]
        if not rows:
            lines += ["The curator kept no pair.", ""]
            continue
        lines += [f"Best {len(best)}" + (" (the whole set)" if not worst else "") + ":", "", *_table(best), ""]
        if worst:
            lines += [f"Worst {len(worst)}:", "", *_table(worst), ""]
    return "\n".join(lines).rstrip() + "\n"

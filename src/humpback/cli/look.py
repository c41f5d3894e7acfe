"""`humpback metrics` and `humpback inspect`: what the stages wrote, as a person reads it."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("metrics")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--match", default="", help="Only keys containing this text.")
@click.option("--pairs", "n_pairs", type=click.IntRange(min=0), default=3, show_default=True,
              help="After every metric (no PATHS, no --match): the best and the worst N curated pairs of each "
                   "iteration, from data/curated (0: none).")
def metrics_cmd(paths: tuple[str, ...], match: str, n_pairs: int) -> None:
    """Print metrics files one key per line (easier to read than a wide `dvc metrics show`), then
    the best and the worst curated pairs of each iteration (what the numbers are about).

    A win rate whose judge fails the reliability bar (order agreement, position bias, unparsed
    verdicts; README, "Judge reliability") is marked, with the reasons.

    \b
    Example:
      humpback metrics                      # every metrics/*.json, then the curated pairs
      humpback metrics metrics/corpus.json
      humpback metrics --match response_chars
      humpback metrics --pairs 10
    """
    import json

    from humpback.core.config import flatten
    from humpback.report.summary import judge_reliability

    files = [Path(p) for p in paths] or sorted(Path("metrics").glob("**/*.json"))
    if not files:
        raise click.ClickException("no metrics files found (run `dvc repro` first)")
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{f}: not valid JSON ({exc.msg})") from None
        click.echo(click.style(str(f), bold=True))
        verdict = judge_reliability(data) if isinstance(data, dict) else None
        for key, value in flatten(data).items():
            if match in key:
                mark = ""
                if key in WIN_RATE_KEYS and verdict and not verdict["reliable"]:
                    mark = click.style("  unreliable judge: " + "; ".join(verdict["reasons"]), fg="yellow")
                if key in WIN_RATE_KEYS and isinstance(data, dict) and (missing := data.get("missing_accepted")):
                    mark += click.style(f"  over {missing['of'] - missing['pairs']} of {missing['of']} pairs: "
                                        f"{missing['pairs']} without a verdict accepted (evaluate.max_failed_share "
                                        f"{missing['max_failed_share']})", fg="yellow")
                click.echo(f"  {key:<44} {value}{mark}")
    if n_pairs and not paths and not match:
        from humpback.report.pairs import pairs_markdown, read_curated

        iterations = sorted(int(p.name[4:]) for p in Path("data/curated").glob("iter*") if p.name[4:].isdigit())
        if curated := read_curated("data/curated", iterations):
            click.echo("\n" + pairs_markdown(curated, n_pairs))


WIN_RATE_KEYS = ("win_rate", "discrete_win_rate", "length_controlled_winrate")


@click.command("inspect")
@click.argument("path", type=click.Path())
@click.option("--min-score", type=float, default=None, help="Only rows scoring at least this (score or preference).")
@click.option("--max-score", type=float, default=None, help="Only rows scoring at most this.")
@click.option("--expected", is_flag=True, help="Filter and sort on the logits scorer's expected score.")
@click.option("--sort", "sort_by", type=click.Choice(["none", "score", "-score"]), default="none", show_default=True,
              help="Order by score, ascending or descending (-score).")
@click.option("-n", "--limit", type=int, default=10, show_default=True, help="How many rows to show (0 = all).")
@click.option("--width", type=int, default=60, show_default=True, help="Characters shown of each text column.")
@click.option("--candidates", default="data/candidates", show_default=True,
              help="Candidates to join to a scores table (so each rating shows its pair).")
def inspect_cmd(path, min_score, max_score, expected, sort_by, limit, width, candidates):
    """A readable table of a humpback dataset: corpus, candidates, scores, curated or seed pairs
    (Parquet folders under data/), or AlpacaEval answers and annotations (JSON).

    \b
    Example:
      humpback inspect data/curated/iter2
      humpback inspect data/scores/iter1 --min-score 5 -n 20
      humpback inspect data/scores/iter1 --expected --sort -score
      humpback inspect data/eval/judged/m1/annotations.json --max-score 1.5
    """
    from rich.console import Console
    from rich.table import Table

    from humpback.cli.tables import KINDS, NotAHumpbackDataset, load, score_of

    try:
        kind, rows = load(path, candidates)
    except NotAHumpbackDataset as exc:
        raise click.ClickException(str(exc)) from None
    total = len(rows)
    if min_score is not None or max_score is not None:
        def keep(r):
            s = score_of(r, expected)
            return s is not None and (min_score is None or s >= min_score) and (max_score is None or s <= max_score)
        rows = [r for r in rows if keep(r)]
    if sort_by != "none":
        rows.sort(key=lambda r: (score_of(r, expected) is None, score_of(r, expected) or 0), reverse=sort_by == "-score")
    shown = rows if limit == 0 else rows[:limit]
    columns = [c for c in KINDS[kind][1] if any(c in r for r in shown)]
    table = Table(title=f"{path}: {kind}, {len(rows)} of {total} rows" + (f", showing {len(shown)}" if len(shown) < len(rows) else ""))
    for c in columns:
        table.add_column(c, overflow="fold", max_width=width if c not in ("id", "score", "expected_score", "index") else None)
    for r in shown:
        cells = []
        for c in columns:
            v = r.get(c)
            if isinstance(v, float):
                v = f"{v:.3f}"
            text = "" if v is None else " ".join(str(v).split())
            cells.append(text if len(text) <= width else text[: width - 1] + "…")
        table.add_row(*cells)
    Console(width=max(80, width * 3)).print(table)


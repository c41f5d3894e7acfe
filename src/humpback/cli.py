"""The `humpback` command: everyday helpers around the DVC pipeline.

The pipeline itself runs with `dvc repro` (see dvc.yaml); these commands check parameters and
let you look at what the corpus stage would do with a file before running it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from humpback import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="humpback")
def main() -> None:
    """humpback: instruction backtranslation (Li et al., 2023) as a DVC + MLflow pipeline.

    \b
    Run the pipeline:      dvc repro
    Check parameters:      humpback check-params params.yaml
    Try the segmenter:     humpback segment README.md
    """


@main.command("check-params")
@click.argument("path", default="params.yaml", type=click.Path(dir_okay=False))
def check_params(path: str) -> None:
    """Validate a params file: unknown keys, wrong types and impossible values.

    \b
    Example:
      humpback check-params params.yaml
      humpback check-params pipeline/profiles/smoke.yaml
    """
    from humpback.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sources = ", ".join(s.type for s in cfg.corpus.sources)
    click.echo(f"{path}: ok")
    click.echo(f"  model:  {cfg.model.source} {cfg.model.name}" + (" (tiny random)" if cfg.model.tiny_random else ""))
    click.echo(f"  seed:   {cfg.seed.source} {cfg.seed.hub_dataset or cfg.seed.path} (held out: {cfg.seed.heldout})")
    click.echo(f"  corpus: {sources}; {cfg.corpus.min_chars}-{cfg.corpus.max_chars} chars, "
               f"cap {cfg.corpus.max_segments or 'none'}")


@main.command("segment")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["auto", "markdown", "rst", "html", "text"]), default="auto",
              show_default=True, help="How to find headers; auto goes by the file suffix.")
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              help="Filter settings to apply (corpus section); defaults apply if the file is missing.")
@click.option("--show-text/--no-show-text", default=False, help="Print each kept segment's text.")
def segment_cmd(path: str, fmt: str, params_path: str, show_text: bool) -> None:
    """Show how the corpus stage splits and filters one document.

    Each line is one segment: its verdict (kept, or the reason it would be dropped), its length
    and its header. Deduplication is applied within this file only.

    \b
    Example:
      humpback segment docs/guide.md
      humpback segment page.html --show-text
    """
    from humpback.config import CorpusConfig, load_config
    from humpback.data.dedup import Deduplicator
    from humpback.data.filters import segment_reason
    from humpback.data.segment import format_for_suffix, segment

    cfg = load_config(params_path).corpus if Path(params_path).exists() else CorpusConfig()
    p = Path(path)
    if fmt == "auto":
        fmt = format_for_suffix(p.suffix) or "text"
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text (byte {exc.start})") from None
    dedup = Deduplicator(cfg.dedup)
    kept = 0
    for seg in segment(text, fmt):
        reason = segment_reason(seg.header, seg.text, cfg) or dedup.reason(seg.text)
        kept += reason is None
        verdict = click.style("kept", fg="green") if reason is None else click.style(reason, fg="yellow")
        click.echo(f"{verdict:<28} {len(seg.text):>6} chars  {'#' * seg.level} {seg.header or '(no header)'}")
        if show_text and reason is None:
            click.echo(click.style(seg.text, dim=True) + "\n")
    click.echo(f"{kept} segment(s) kept")


def _flatten(obj, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(obj, dict):
        return [kv for k, v in obj.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, obj)]


@main.command("metrics")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--match", default="", help="Only keys containing this text.")
def metrics_cmd(paths: tuple[str, ...], match: str) -> None:
    """Print metrics files one key per line (easier to read than a wide `dvc metrics show`).

    \b
    Example:
      humpback metrics                      # every metrics/*.json
      humpback metrics metrics/corpus.json
      humpback metrics --match response_chars
    """
    import json

    files = [Path(p) for p in paths] or sorted(Path("metrics").glob("**/*.json"))
    if not files:
        raise click.ClickException("no metrics files found (run `dvc repro` first)")
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{f}: not valid JSON ({exc.msg})") from None
        click.echo(click.style(str(f), bold=True))
        for key, value in _flatten(data):
            if match in key:
                click.echo(f"  {key:<44} {value}")


if __name__ == "__main__":  # pragma: no cover
    main()

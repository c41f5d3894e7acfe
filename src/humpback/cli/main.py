"""The `humpback` command: everyday helpers around the DVC pipeline.

The pipeline itself runs with `dvc repro` (see dvc.yaml); these commands check parameters, try a
model or the segmenter by hand, show what the stages wrote, export answers for AlpacaEval and open
the MLflow UI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from humpback import __version__
from humpback.cli.export import export_group
from humpback.cli.look import inspect_cmd, metrics_cmd
from humpback.cli.ui import ui_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="humpback")
def main() -> None:
    """humpback: instruction backtranslation (Li et al., 2023) as a DVC + MLflow pipeline.

    \b
    Run the pipeline:      dvc repro
    Check parameters:      humpback check-params params.yaml
    Check inputs too:      humpback check   (dangling links, unreadable files)
    Switch scale:          humpback profile apply smoke
    Try the segmenter:     humpback segment README.md
    Ask a model:           humpback generate m2 "How do I keep basil alive?"
    Look at the data:      humpback inspect data/curated/iter1 --min-score 5
    Browse experiments:    humpback ui
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
    from humpback.core.config import ConfigError
    from humpback.params import load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sources = ", ".join(s.type for s in cfg.raw.sources)
    click.echo(f"{path}: ok")
    click.echo(f"  model:  {cfg.model.source} {cfg.model.name}" + (" (tiny random)" if cfg.model.tiny_random else ""))
    click.echo(f"  seed:   {cfg.seed.source} {cfg.seed.hub_dataset or cfg.seed.path} (held out: {cfg.seed.heldout})")
    click.echo(f"  raw:    {sources} under {cfg.raw.path}")
    click.echo(f"  corpus: {cfg.corpus.min_chars}-{cfg.corpus.max_chars} chars, "
               f"cap {cfg.corpus.max_segments or 'none'}")
    c = cfg.curate
    click.echo(f"  curate: {c.scorer} scorer, keep {'expected score' if c.use_expected_score else 'score'} >= {c.threshold}; "
               f"iterations {', '.join(str(i) for i in sorted(cfg.iterations))}")
    ev = cfg.evaluate
    click.echo(f"  eval:   {ev.set.source} {ev.set.hub_dataset or ev.set.path}; {', '.join(ev.models)} vs {ev.reference}; "
               f"judge {ev.judge.kind} ({ev.judge.label})" + (f"; scaling {cfg.scaling.sizes}" if cfg.scaling.sizes else ""))


@main.command("check")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def check_cmd(params_path: str) -> None:
    """Check params and the input files before `dvc repro` does.

    Validates the params file (as check-params does), then lists every dangling symbolic link and
    unreadable file or folder under raw.path, the raw stage's DVC dependency: DVC hashes that folder
    before any stage runs, and stops at the first such entry with a bare "[Errno 2] No such file or
    directory". Exit status 1 when something is listed.

    \b
    Fix a folder copied with `cp -r` that carries links out of it:
      rm -r data/mycorpus && cp -rL /usr/share/doc/python3-doc/html data/mycorpus
    """
    from humpback.core.config import ConfigError
    from humpback.data.check import unhashable
    from humpback.params import load_config

    try:
        cfg = load_config(params_path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    roots = [cfg.raw.path] + [s.path for s in cfg.raw.sources if s.type == "files" and
                              not Path(s.path).resolve().is_relative_to(Path(cfg.raw.path).resolve())]
    problems = [p for root in roots for p in unhashable(root)]
    for p in problems:
        click.echo(f"  {p}")
    if problems:
        click.echo(f"error: {len(problems)} entries under {', '.join(roots)} cannot be hashed by DVC: copy the folder "
                   "with links resolved (cp -rL SRC DEST), or remove them", err=True)
        sys.exit(1)
    click.echo(f"{params_path}: ok; every file under {', '.join(roots)} can be read")


@main.group("profile")
def profile_group() -> None:
    """Switch params.yaml between scales: the demo (the defaults), smoke, paper, or your own.

    A profile in pipeline/profiles/ holds only what differs from the defaults. `apply` writes
    params.yaml (defaults + profile, comments kept), so `dvc repro`, `dvc exp run -S` and
    `dvc params diff` see an ordinary params file.
    """


@profile_group.command("list")
@click.option("--dir", "profiles_dir", default="pipeline/profiles", show_default=True)
def profile_list(profiles_dir):
    """The profiles there are, with the first line of each."""
    from humpback.cli.profiles import DEFAULTS_NAME, available, profile_path

    click.echo(f"{DEFAULTS_NAME:10s} The defaults (each step's config.py section): the offline CPU demo")
    for name in available(profiles_dir):
        first = profile_path(name, profiles_dir).read_text(encoding="utf-8").splitlines()[:1]
        click.echo(f"{name:10s} {first[0].lstrip('# ') if first else ''}")


@profile_group.command("show")
@click.argument("name")
@click.option("--dir", "profiles_dir", default="pipeline/profiles", show_default=True)
def profile_show(name, profiles_dir):
    """Every value the profile changes, against the defaults (nothing is written)."""
    from humpback.cli.profiles import changes, defaults, overlay_of, resolve
    from humpback.core.config import ConfigError

    try:
        source, overlay = overlay_of(name, profiles_dir)
        diff = changes(defaults(), resolve(overlay, source))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for key, old, new in diff:
        click.echo(f"{key}: {old!r} -> {new!r}")


@profile_group.command("apply")
@click.argument("name")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--dir", "profiles_dir", default="pipeline/profiles", show_default=True)
def profile_apply(name, params_path, profiles_dir):
    """Write params.yaml = the defaults + profile NAME (a name in --dir, or a .yaml path).

    \b
    Example:
      humpback profile apply smoke && dvc repro     # the whole DAG in seconds, tiny random model
      humpback profile apply paper                  # LLaMA-7B, OASST1, hub corpus, GPT-4 judge
      humpback profile apply demo                   # back to the defaults (no file needed)
    """
    from humpback.cli.profiles import apply
    from humpback.core.config import ConfigError

    try:
        diff = apply(name, params_path, profiles_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{params_path}: profile {name}, {len(diff)} values changed")
    for key, old, new in diff:
        click.echo(f"  {key}: {old!r} -> {new!r}")


@main.group("snapshot")
def snapshot_group() -> None:
    """Take a snapshot of a live corpus source into a file that the `raw` stage reads.

    A live source (the installed Python packages, a web crawl) gives different documents on
    different machines and days, so no stage reads it directly: snapshot it once, commit or
    `dvc add` the file, and point a `files` source under `raw.path` at it.
    """


@snapshot_group.command("packages")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--max-documents", type=int, default=None, help="Stop after this many documents (default: all).")
@click.option("--order-seed", type=int, default=0, show_default=True,
              help="Documents come in a seeded hash order of the package name, so a cap spans many projects.")
@click.option("--license", "license_pattern", default=None,
              help="Regex a package's licence must match (default: permissive licences: MIT, BSD, Apache, PSF, ...).")
@click.option("--any-license", is_flag=True, help="Keep every package whatever its licence says.")
def snapshot_packages_cmd(out, max_documents, order_seed, license_pattern, any_license):
    """The project pages (long descriptions) of the installed Python distributions, as .jsonl(.gz).

    Each row: text, url (the PyPI page of that version), source, name (name==version), license,
    format. The same documents always give the same bytes.

    \b
    Example (how data/demo/corpus was made):
      humpback snapshot packages data/demo/corpus/python-packages.jsonl.gz --max-documents 120
    """
    from humpback.data.raw import PERMISSIVE, snapshot_packages

    if any_license and license_pattern:
        raise click.UsageError("--license and --any-license exclude each other")
    try:
        counts = snapshot_packages(out, order_seed, max_documents,
                                   None if any_license else (license_pattern or PERMISSIVE))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "written") or "none"
    click.echo(f"{out}: {counts.get('written', 0)} documents (skipped: {skipped})")


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
    from humpback.data.config import CorpusConfig
    from humpback.data.filters import segment_reason
    from humpback.data.segment import format_for_suffix, segment
    from humpback.data.steps import duplicates_within
    from humpback.params import load_config

    cfg = load_config(params_path).corpus if Path(params_path).exists() else CorpusConfig()
    p = Path(path)
    if fmt == "auto":
        fmt = format_for_suffix(p.suffix) or "text"
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text (byte {exc.start})") from None
    segments = segment(text, fmt, cfg.html_main_content)
    reasons = [segment_reason(seg.header, seg.text, cfg) for seg in segments]
    passed = iter(duplicates_within([seg.text for seg, r in zip(segments, reasons) if r is None], cfg.dedup))
    kept = 0
    for seg, reason in zip(segments, reasons):
        reason = reason or next(passed)
        kept += reason is None
        verdict = click.style("kept", fg="green") if reason is None else click.style(reason, fg="yellow")
        click.echo(f"{verdict:<28} {len(seg.text):>6} chars  {'#' * seg.level} {seg.header or '(no header)'}")
        if show_text and reason is None:
            click.echo(click.style(seg.text, dim=True) + "\n")
    click.echo(f"{kept} segment(s) kept")


def _model_dir(model: str) -> Path:
    """A pipeline model name (m1 -> models/m1) or a checkpoint folder; a clear error if neither."""
    path = Path(model) if ("/" in model or Path(model).is_dir()) else Path("models") / model
    if not (path / "config.json").is_file():
        hint = " (run `dvc repro` to build it)" if path.parent == Path("models") else ""
        raise click.ClickException(f"no model at '{path}'{hint}: give a pipeline model name (base, backward, m0, "
                                   "m1, ...) or a folder with a transformers checkpoint")
    return path


@main.command("generate")
@click.argument("model")
@click.argument("prompt")
@click.option("--tag/--no-tag", default=True, show_default=True,
              help="Add evaluate.inference_tag (the paper's tags) as the stages do.")
@click.option("--max-new-tokens", type=int, default=None, help="Default: evaluate.generation.max_new_tokens.")
@click.option("--temperature", type=float, default=None, help="Default: evaluate.generation.temperature (0 = greedy).")
@click.option("--seed", type=int, default=None, help="Default: evaluate.generation.seed.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def generate_cmd(model, prompt, tag, max_new_tokens, temperature, seed, params_path):
    """Answer PROMPT with MODEL (m0, m1, ..., or a checkpoint folder), prompted as in evaluation.

    \b
    Example:
      humpback generate m2 "Give me three tips for a first marathon."
      humpback generate m0 "Write a haiku about rain." --no-tag --temperature 0
      humpback generate models/backward "Sourdough needs a lively starter..." --no-tag
    """
    from humpback.core.config import ConfigError
    from humpback.models.engine import EngineSpec
    from humpback.params import load_config, parse_config
    from humpback.prompts import forward_messages

    path = _model_dir(model)
    try:
        # outside a project (no params.yaml) the defaults apply: the paper's tags and sampling
        cfg = load_config(params_path) if Path(params_path).exists() else parse_config({})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    overrides = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    g = cfg.evaluate.generation.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    spec = EngineSpec(path, g, cfg.vllm)
    messages = forward_messages(prompt, cfg.evaluate.inference_tag if tag else None, cfg.prompts)
    click.echo(spec.generator().generate([messages], spec.sampling())[0].strip())


main.add_command(export_group)
main.add_command(metrics_cmd)
main.add_command(inspect_cmd)
main.add_command(ui_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()

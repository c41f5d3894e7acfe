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
    from humpback.config import ConfigError, load_config

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
    from humpback.config import ConfigError, load_config
    from humpback.data.check import unhashable

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
    from humpback.profiles import DEFAULTS_NAME, available, profile_path

    click.echo(f"{DEFAULTS_NAME:10s} The defaults (src/humpback/config.py): the offline CPU demo")
    for name in available(profiles_dir):
        first = profile_path(name, profiles_dir).read_text(encoding="utf-8").splitlines()[:1]
        click.echo(f"{name:10s} {first[0].lstrip('# ') if first else ''}")


@profile_group.command("show")
@click.argument("name")
@click.option("--dir", "profiles_dir", default="pipeline/profiles", show_default=True)
def profile_show(name, profiles_dir):
    """Every value the profile changes, against the defaults (nothing is written)."""
    from humpback.config import ConfigError
    from humpback.profiles import changes, defaults, overlay_of, resolve

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
    from humpback.config import ConfigError
    from humpback.profiles import apply

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


@main.command("metrics")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--match", default="", help="Only keys containing this text.")
def metrics_cmd(paths: tuple[str, ...], match: str) -> None:
    """Print metrics files one key per line (easier to read than a wide `dvc metrics show`).

    A win rate whose judge fails the reliability bar (order agreement, position bias, unparsed
    verdicts; README, "Judge reliability") is marked, with the reasons.

    \b
    Example:
      humpback metrics                      # every metrics/*.json
      humpback metrics metrics/corpus.json
      humpback metrics --match response_chars
    """
    import json

    from humpback.io import flatten
    from humpback.report import judge_reliability

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


WIN_RATE_KEYS = ("win_rate", "discrete_win_rate", "length_controlled_winrate")


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
    from humpback.config import ConfigError, load_config, parse_config
    from humpback.models.generation import EngineSpec
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


@main.command("inspect")
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

    from humpback.tables import KINDS, NotAHumpbackDataset, load, score_of

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


@main.group("export")
def export_group() -> None:
    """Write pipeline results in other tools' formats."""


@export_group.command("alpaca-eval")
@click.argument("model")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file. Default: alpaca_eval/<model>/model_outputs.json")
@click.option("--annotations/--no-annotations", default=True, show_default=True,
              help="Also copy the judge's annotations (AlpacaEval format) beside it.")
def export_alpaca_eval(model, out, annotations):
    """Export MODEL's answers to the eval set in AlpacaEval's model-outputs format, ready for
    `alpaca_eval evaluate --model_outputs FILE` (the answers come from `dvc repro answer@MODEL`).

    \b
    Example:
      humpback export alpaca-eval m2
      alpaca_eval evaluate --model_outputs alpaca_eval/m2/model_outputs.json --annotators_config weighted_alpaca_eval_gpt4_turbo
    """
    import json
    import shutil

    from humpback.tables import NotAHumpbackDataset, load

    answers = Path("data/eval/answers") / f"{model}.json"
    if not answers.is_file():
        raise click.ClickException(f"no answers for '{model}' at {answers}: add it to evaluate.models and run "
                                   f"`dvc repro answer@{model}`")
    try:
        kind, rows = load(answers)
    except NotAHumpbackDataset as exc:
        raise click.ClickException(str(exc)) from None
    if kind != "model_outputs":
        raise click.ClickException(f"{answers}: not AlpacaEval model outputs ({kind})")
    out_path = Path(out or f"alpaca_eval/{model}/model_outputs.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"{out_path}: {len(rows)} outputs of {model}")
    judged = Path("data/eval/judged") / model / "annotations.json"
    if annotations and judged.is_file():
        shutil.copyfile(judged, out_path.with_name("annotations.json"))
        click.echo(f"{out_path.with_name('annotations.json')}: the judge's annotations")


@export_group.command("dataset")
@click.argument("iteration", type=int)
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--push-to-hub", "repo_id", default=None, metavar="REPO",
              help="Also upload the folder as the dataset repo REPO (user/name); token from $HF_TOKEN only.")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repo private.")
def export_dataset_cmd(iteration, out, repo_id, private):
    """Export ITERATION's curated set (data/curated/iter<ITERATION>) as a Hugging Face dataset in OUT:
    Parquet plus a README.md dataset card whose metadata holds the curation recipe and threshold,
    the licences and sources of the documents the responses came from, the DVC md5 of the models
    and data behind it, the git commit and the curator check's AUC. `datasets.load_dataset(OUT)`
    reads it.

    \b
    Example:
      humpback export dataset 2 exports/iter2
      HF_TOKEN=hf_... humpback export dataset 2 exports/iter2 --push-to-hub me/humpback-iter2
    """
    from humpback.export import ExportError, export_dataset, push_to_hub

    try:
        card = export_dataset(iteration, out, repo_id=repo_id)
        meta = card.data.to_dict()["humpback"]
        click.echo(f"{out}: {meta['pairs']} pairs of iteration {iteration} (Parquet + README.md dataset card; "
                   f"source licences: {', '.join(meta['licenses']) or 'none'})")
        if repo_id:
            click.echo(f"uploaded: {push_to_hub(out, repo_id, private)}")
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("ui")
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback by default: the UI has no login.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="Where mlflow.experiment is set (the default experiment, humpback, if the file is missing).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server worker processes. One serves one person and starts faster than MLflow's default 4.")
def ui_cmd(port, host, params_path, workers):
    """Open the MLflow UI on this project's store (mlflow.db, or MLFLOW_TRACKING_URI).

    The printed URL lands on the project's runs table: one parent run per pipeline execution, its
    stage runs beneath it.

    \b
    Example:
      humpback ui                 # then open the printed URL
      humpback ui --port 5001
    """
    import os

    from humpback import tracking
    from humpback.config import ConfigError, MlflowConfig, load_config

    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise click.ClickException(f"no MLflow store at {uri.removeprefix('sqlite:///')}: run `dvc repro` first "
                                   "(or set MLFLOW_TRACKING_URI)")
    try:
        experiment = load_config(params_path).mlflow.experiment if Path(params_path).exists() else MlflowConfig().experiment
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    page = tracking.runs_page(experiment) or ""
    click.echo(f"MLflow UI on {uri}: http://{host}:{port}/{page}  (Ctrl-C to stop)")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
           "--workers", str(workers)]
    sys.exit(_serve(cmd, {**os.environ, "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true"}))


def _serve(cmd: list[str], env: dict) -> int:
    """Run a server until it exits or we are told to stop (Ctrl-C, SIGTERM, SIGHUP); then stop it and
    everything it started. The MLflow UI spawns a web server, a job runner and queue consumers: they
    run in a new process group, which is signalled as a whole."""
    import signal
    import subprocess

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    # SIGINT too: a process started with SIGINT ignored (a background job of a script, a test runner
    # that ignores it) would otherwise never see Ctrl-C, and Python installs no handler of its own then
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(proc)


def _stop_group(proc, grace_s: float = 10.0) -> None:
    """SIGTERM to the process group of ``proc``, SIGKILL to what is left after ``grace_s``."""
    import os
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return  # nobody left in the group
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or it stays in the group as a zombie
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


if __name__ == "__main__":  # pragma: no cover
    main()

"""Stage `raw`: the raw corpus node, a snapshot of the configured sources as Parquet with provenance.

\b
    dvc repro raw
    python pipeline/raw.py --out data/raw --metrics metrics/raw.json

Reads `raw.*`. Sources: local files or directories under `raw.path` (txt, md, rst, html, jsonl, json,
parquet, optionally .gz; the demo: data/demo/corpus, a snapshot of PyPI project pages), or a streamed
hub dataset (pin its `revision`). Live sources are read again only when these params change or on
`dvc repro -f raw`: a new snapshot is an explicit act. Writes data/raw/part-*.parquet (id, source,
url, name, license, format, text: one row per usable document) and metrics/raw.json (documents read,
kept, skipped by reason, licences). The corpus stage reads data/raw only.
"""

import logging
import shutil

import click

from _common import load_params, params_option, run_stage
from humpback.core.files import write_json
from humpback.data.config import RawConfig
from humpback.data.raw import build_raw

log = logging.getLogger("humpback.raw")


@click.command(help=__doc__)
@params_option
@click.option("--out", default="data/raw", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default="metrics/raw.json", show_default=True)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def main(params_path: str, out: str, metrics_path: str, progress: bool) -> None:
    cfg = load_params(params_path, raw=RawConfig).raw
    shutil.rmtree(out, ignore_errors=True)
    try:
        report = build_raw(cfg, out, progress=progress)
    except FileNotFoundError as exc:
        raise click.ClickException(f"{exc} (check raw.sources in {params_path})") from None
    metrics = report.metrics()
    write_json(metrics_path, metrics)
    if not report.chars:
        raise click.ClickException(f"no usable document in raw.sources (skipped: {metrics['documents']['skipped']})")
    log.info("raw: %d of %d documents kept in %d shards (skipped: %s)", report.chars.total(), report.documents_read,
             len(report.shards), ", ".join(f"{k} {v}" for k, v in metrics["documents"]["skipped"].items()) or "none")


if __name__ == "__main__":
    run_stage(main)

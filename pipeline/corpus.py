"""Stage `corpus`: unlabelled human-written text -> filtered, deduplicated segments in Parquet shards.

\b
    dvc repro corpus
    python pipeline/corpus.py --out data/corpus --metrics metrics/corpus.json

Reads `corpus.*`. Sources: the project pages of the installed Python packages (offline default),
local files or directories (txt, md, rst, html, jsonl, parquet, .gz), or a streamed hub dataset.
Each document is split at its headers, filtered with the paper's rules (600-3,000 characters,
header heuristics, repetitive sentences, English only) and deduplicated (exact + MinHash LSH).
Writes data/corpus/part-*.parquet, data/corpus/manifest.json (which packages/versions went in)
and metrics/corpus.json (kept count and drops by reason; they add up to the input).
"""

import logging
import shutil
import time

import click

from _common import load_params, params_option
from humpback.data.corpus import build_corpus
from humpback.io import write_json

log = logging.getLogger("humpback.corpus")


@click.command(help=__doc__)
@params_option
@click.option("--out", default="data/corpus", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default="metrics/corpus.json", show_default=True)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def main(params_path: str, out: str, metrics_path: str, progress: bool) -> None:
    cfg = load_params(params_path).corpus
    start = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    try:
        report = build_corpus(cfg, out, progress=progress)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    metrics = report.metrics()
    write_json(metrics_path, metrics)
    write_json(f"{out}/manifest.json", {"shards": report.shards, "python_packages": report.packages})
    if report.segments_kept == 0:
        log.warning("no segment passed the filters: check corpus.sources and the filter settings")
    dropped = ", ".join(f"{k} {v}" for k, v in metrics["segments"]["dropped"].items())
    # seconds are logged, not written to metrics: metrics files stay byte-identical across reruns
    log.info("corpus: kept %d of %d segments from %d documents in %d shards in %.1fs (dropped: %s)",
             report.segments_kept, report.segments_input, report.documents_read, len(report.shards),
             time.perf_counter() - start, dropped or "none")


if __name__ == "__main__":
    main()

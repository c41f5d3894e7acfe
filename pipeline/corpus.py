"""Stage `corpus`: raw documents -> filtered, deduplicated segments in Parquet shards.

\b
    dvc repro corpus
    python pipeline/corpus.py --raw data/raw --out data/corpus --metrics metrics/corpus.json

Reads `corpus.*` and the raw corpus node data/raw (stage `raw`), nothing else. A datatrove pipeline
of `corpus.tasks` tasks: each document is split at its headers, filtered with the paper's rules
(600-3,000 characters, header heuristics, repetitive sentences, English only) and deduplicated (exact,
then MinHash near-duplicates, on disk). Writes data/corpus/part-*.parquet, data/corpus/manifest.json
(each document the kept segments come from: url, name, licence and kept count) and metrics/corpus.json
(kept count and drops by reason; they add up).

Where the tasks run is `corpus_run` (not a DVC param: the bytes are the same): `local` (a process per
core), `ray` (on `ray.address`) or `slurm` (sbatch job arrays). A killed or failed run keeps its
finished tasks in `corpus_run.work_dir`, and the next run does only the rest.
"""

import logging
import shutil
import time

import click

from _common import load_params, params_option, run_stage
from humpback.core.config import RayConfig
from humpback.core.files import write_json
from humpback.data.config import CorpusConfig, CorpusRunConfig
from humpback.data.corpus import build_corpus
from humpback.data.executors import CorpusRunError

log = logging.getLogger("humpback.corpus")


@click.command(help=__doc__)
@params_option
@click.option("--raw", "raw_dir", default="data/raw", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="data/corpus", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", "metrics_path", default="metrics/corpus.json", show_default=True)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def main(params_path: str, raw_dir: str, out: str, metrics_path: str, progress: bool) -> None:
    params = load_params(params_path, corpus=CorpusConfig, corpus_run=CorpusRunConfig, ray=RayConfig)
    cfg = params.corpus
    start = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    try:
        report = build_corpus(cfg, raw_dir, out, progress=progress, run=params.corpus_run, ray=params.ray)
    except (FileNotFoundError, CorpusRunError) as exc:
        raise click.ClickException(str(exc)) from None
    metrics = report.metrics()
    write_json(metrics_path, metrics)
    if report.segments_kept == 0:
        log.warning("no segment passed the filters: check raw.sources and the corpus filter settings")
    dropped = ", ".join(f"{k} {v}" for k, v in metrics["segments"]["dropped"].items())
    # seconds are logged, not written to metrics: metrics files stay byte-identical across reruns
    log.info("corpus: kept %d of %d segments from %d documents in %d shards in %.1fs (dropped: %s)",
             report.segments_kept, report.segments_input, report.documents_read, len(report.shards),
             time.perf_counter() - start, dropped or "none")


if __name__ == "__main__":
    run_stage(main)

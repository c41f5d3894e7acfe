"""What the pipeline costs around its model work, in one run: a no-op `dvc repro`, and augmenting one
added corpus shard against augmenting them all.

    python benchmarks/pipeline_costs.py [--out bench.json]

- no-op `dvc repro`: seconds for DVC to find nothing to do in this repository (run it after `dvc
  repro`; skipped when the pipeline is not up to date, so it never starts real work);
- incremental augmentation: the augment library call on the demo's corpus shards with the backward
  model (`--model`), all shards from scratch against a rerun after one shard was added (the others
  are reused by key); the ratio is what a growing corpus costs per added shard;
- the corpus stage's peak memory as the corpus grows is measured by ``corpus_scaling.py``, summed
  over the stage and its workers.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from _machine import hardware

ROOT = Path(__file__).resolve().parents[1]


def noop_repro_seconds(runs: int = 3) -> float | None:
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--quiet"], cwd=ROOT, capture_output=True)
    if status.returncode != 0:
        click.echo("  dvc status: the pipeline is not up to date; no-op repro skipped", err=True)
        return None
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 2)


def incremental_augment(model: Path, corpus: Path, work: Path, new_tokens: int) -> dict:
    from humpback.augment.generate import augment
    from humpback.core.keys import path_md5
    from humpback.models.engine import EngineSpec
    from humpback.params import load_config
    from humpback.prompts import read_template

    cfg = load_config(ROOT / "params.yaml")
    gen = cfg.augment.generation.model_copy(update={"max_new_tokens": new_tokens})
    spec, template, digest = EngineSpec(model, gen, cfg.vllm), read_template("backward"), path_md5(model)
    shards = sorted(corpus.glob("part-*.parquet"))
    if len(shards) < 2:
        raise click.ClickException(f"{corpus}: need at least two corpus shards (run `dvc repro corpus`)")

    def run(src: Path, out: Path):
        start = time.perf_counter()
        report = augment(src, out, spec, cfg.augment, template, digest, progress=False)
        return report, time.perf_counter() - start

    src, out = work / "corpus", work / "candidates"
    src.mkdir()
    for s in shards:
        shutil.copy2(s, src / s.name)
    full, full_s = run(src, out)
    # the state before the newest shard arrived: every candidate shard but the one made from it
    for f in out.glob(f"{shards[-1].stem}-*.parquet"):
        f.unlink()
    added, added_s = run(src, out)
    return {"shards": len(shards), "segments": full.segments, "new_tokens": new_tokens,
            "full_seconds": round(full_s, 1), "added_shard_seconds": round(added_s, 1),
            "added_generated": added.shards_generated, "added_reused": added.shards_reused,
            "ratio": round(added_s / full_s, 3)}


@click.command(help=__doc__)
@click.option("--model", default="models/backward", show_default=True, type=click.Path(file_okay=False))
@click.option("--corpus", default="data/corpus", show_default=True, type=click.Path(file_okay=False))
@click.option("--new-tokens", default=16, show_default=True, help="New tokens per instruction in the augment rows.")
@click.option("--noop/--no-noop", default=True, show_default=True, help="Time a no-op `dvc repro` here.")
@click.option("--out", default=None, help="Write the results as JSON here.")
def main(model, corpus, new_tokens, noop, out):
    from humpback.core.logs import setup_logging

    setup_logging()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        results["noop_repro_seconds"] = noop_repro_seconds() if noop else None
        if Path(model).is_dir() and Path(corpus).is_dir():
            (work / "augment").mkdir()
            results["augment"] = incremental_augment(Path(model), Path(corpus), work / "augment", new_tokens)
        else:
            click.echo(f"  {model} or {corpus} missing: run `dvc repro augment` first; augment rows skipped", err=True)
    results["hardware"] = hardware()
    click.echo(f"\n{results['hardware']}\n")
    click.echo("| measure | value |\n| --- | --- |")
    noop_s = results["noop_repro_seconds"]
    click.echo(f"| no-op `dvc repro` | {'skipped' if noop_s is None else f'{noop_s} s'} |")
    if "augment" in results:
        a = results["augment"]
        click.echo(f"| augment, all {a['shards']} shards ({a['segments']} segments) from scratch | {a['full_seconds']} s |")
        click.echo(f"| augment, one added shard ({a['added_generated']} generated, {a['added_reused']} reused) | "
                   f"{a['added_shard_seconds']} s ({a['ratio']:.2f}x) |")
    if out:
        Path(out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

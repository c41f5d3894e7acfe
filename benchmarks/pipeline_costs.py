"""What the pipeline costs around its model work, in one run: a no-op `dvc repro`, augmenting one
added corpus shard against augmenting them all, and the corpus stage's peak memory as the corpus grows.

    python benchmarks/pipeline_costs.py [--sizes 1000,20000] [--out bench.json]

- no-op `dvc repro`: seconds for DVC to find nothing to do in this repository (run it after `dvc
  repro`; skipped when the pipeline is not up to date, so it never starts real work);
- incremental augmentation: the augment library call on the demo's corpus shards with the backward
  model (`--model`), all shards from scratch against a rerun after one shard was added (the others
  are reused by key); the ratio is what a growing corpus costs per added shard;
- corpus memory: the corpus stage (`pipeline/corpus.py`, its own process) on synthetic raw documents
  of English words with headers, at each size in `--sizes` segments; the peak resident memory of
  that process (flat is the goal: one document in memory at a time, shards flushed as they fill,
  dedup keeps only hashes).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml
from _machine import hardware

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the of and to in is was for on that with as by at from his her an which or are this be had not but "
         "have were their one all been has more they when there who would can if also into its time only new "
         "some could these two may first then do any like other than about after most over such where years "
         "made water way many through well back much before great because good same work long little world "
         "very still own place people right those just while city found part between both under never house "
         "every number small without large again another family often left country system school point "
         "river island garden music history science energy market library bridge winter forest language").split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(9, 18))]
    return " ".join(words).capitalize() + "."


def synthetic_raw(out: Path, segments: int, seed: int = 0) -> None:
    """Raw shards of Markdown documents, three header sections each of 700-1,400 characters of
    distinct English-word sentences: they pass the corpus filters and are not duplicates."""
    from humpback.core.shards import RAW_SCHEMA, ShardWriter
    from humpback.data.dedup import content_id

    rng = random.Random(seed)
    writer = ShardWriter(out, RAW_SCHEMA, 2000)
    for d in range((segments + 2) // 3):
        parts = []
        for s in range(3):
            body = ""
            while len(body) < rng.randint(700, 1400):
                body += _sentence(rng) + " "
            parts.append(f"## {rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} {d}-{s}\n\n{body.strip()}\n")
        text = "\n".join(parts)
        writer.add({"id": content_id(text), "source": "synthetic", "url": f"synthetic://{d}", "name": f"doc{d}",
                    "license": None, "format": "markdown", "text": text})
    writer.close()


def corpus_peak_memory(segments: int, work: Path) -> dict:
    raw, out = work / f"raw-{segments}", work / f"corpus-{segments}"
    synthetic_raw(raw, segments)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["corpus"].update(max_segments=None, max_segments_per_document=None, shard_size=2000)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "pipeline" / "corpus.py"), "--params", str(work / "params.yaml"),
                             "--raw", str(raw), "--out", str(out), "--metrics", str(work / f"corpus-{segments}.json"),
                             "--no-progress"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest child's so far
    seconds = time.perf_counter() - start
    if status != 0:
        raise click.ClickException(f"corpus stage failed at {segments} segments: {proc.stderr.read().decode()[-2000:]}")
    kept = json.loads((work / f"corpus-{segments}.json").read_text())["segments"]["kept"]
    return {"segments_asked": segments, "segments_kept": kept, "seconds": round(seconds, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


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
@click.option("--sizes", default="1000,20000", show_default=True, help="Corpus sizes in segments, comma-separated.")
@click.option("--model", default="models/backward", show_default=True, type=click.Path(file_okay=False))
@click.option("--corpus", default="data/corpus", show_default=True, type=click.Path(file_okay=False))
@click.option("--new-tokens", default=16, show_default=True, help="New tokens per instruction in the augment rows.")
@click.option("--noop/--no-noop", default=True, show_default=True, help="Time a no-op `dvc repro` here.")
@click.option("--out", default=None, help="Write the results as JSON here.")
def main(sizes, model, corpus, new_tokens, noop, out):
    from humpback.core.logs import setup_logging

    setup_logging()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        # first, while this process is small: Linux carries a process's peak RSS across exec, so a
        # child started by a process holding a model would report at least that model's size
        results["corpus_memory"] = [corpus_peak_memory(int(n), work) for n in sizes.split(",") if n]
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
    for m in results["corpus_memory"]:
        click.echo(f"| corpus stage, {m['segments_kept']} segments kept | peak {m['peak_rss_mib']} MiB, {m['seconds']} s |")
    if out:
        Path(out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Where the corpus stage spends its time: each step side by side on the same documents.

    python benchmarks/corpus_throughput.py [--documents 200]

Reads the installed packages' project pages (a live snapshot, as `humpback snapshot packages` takes
it, no cap), then times, in one run,
segmentation, each filter and dedup over exactly the same segments. Prints throughput and each
step's share of the total, so the ratios say what to optimise; absolute seconds on a shared machine
say little.
"""

from __future__ import annotations

import itertools
import time

import click

from humpback.data.config import CorpusConfig
from humpback.data.dedup import exact_config
from humpback.data.filters import header_reason, language_reason, length_reason, repetition_reason
from humpback.data.segment import segment
from humpback.data.sources import iter_python_packages


@click.command()
@click.option("--documents", default=200, show_default=True, help="Package pages to read.")
def main(documents: int) -> None:
    cfg = CorpusConfig()
    docs = [d for d in itertools.islice(iter_python_packages(0, 5_000_000), documents) if d.text]
    timings: dict[str, float] = {}

    def timed(name, fn, items):
        start = time.perf_counter()
        out = [fn(x) for x in items]
        timings[name] = time.perf_counter() - start
        return out

    segments = [s for segs in timed("segment", lambda d: segment(d.text, d.format), docs) for s in segs]
    timed("header filter", lambda s: header_reason(s.header, cfg.header), segments)
    timed("length filter", lambda s: length_reason(s.text, cfg.min_chars, cfg.max_chars), segments)
    # the expensive steps only see what passes the cheap ones, as in the stage
    window = [s for s in segments if length_reason(s.text, cfg.min_chars, cfg.max_chars) is None]
    timed("repetition filter", lambda s: repetition_reason(s.text, cfg.repetition), window)
    timed("language id", lambda s: language_reason(s.text, cfg.language), window)
    # dedup's per-segment work: the exact hash and the MinHash signature (the merges after it stream
    # sorted files and grow with the duplicates, not the segments)
    from datatrove.utils.hashing import create_hash_func

    from humpback.data.steps import minhash_signature

    exact_hash, sig = create_hash_func(exact_config().hash_config), minhash_signature("memory://x", cfg.dedup)
    timed("dedup signatures", lambda s: (exact_hash(" ".join(s.text.lower().split())),
                                         sig.get_signature(sig.get_shingles(s.text))), window)

    total = sum(timings.values())
    chars = sum(len(s.text) for s in segments)
    click.echo(f"{len(docs)} documents, {len(segments)} segments ({len(window)} in the length window), "
               f"{chars / 1e6:.1f} M characters")
    click.echo(f"{'step':<24}{'segments':>9}{'segments/s':>12}{'share':>8}")
    for name, t in timings.items():
        n = len(segments) if name in ("segment", "header filter", "length filter") else len(window)
        click.echo(f"{name:<24}{n:>9}{n / t:>12.0f}{t / total:>8.1%}")
    click.echo(f"{'all steps':<24}{len(segments):>9}{len(segments) / total:>12.0f}{1:>8.0%}")


if __name__ == "__main__":
    main()

"""The driver's memory on the Ray path as the backlog grows: does it hold every pending input shard?

    python benchmarks/ray_backlog.py [--shards 8,32] [--shard-mib 8] [--out FILE]

Runs :func:`humpback.core.units.map_shards` on a local Ray (one replica) over backlogs of N input
shards of the given size, with a job that needs no model (it returns each shard's ids), and samples
the driver's resident memory (RSS) every 20 ms. The peak above the baseline taken just before each
run is what the stage's own process holds because of the backlog; flat across N means it streams.
Ratios and growth, not absolute MiB: Ray's own workers are other processes and are not counted.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))


class IdsJob:
    """No model: one output row per input row (the ids), so the shard contract holds."""

    def setup(self) -> None:
        pass

    def run(self, rows: pa.Table, key: str, progress) -> pa.Table:
        return rows.select(["id"])

    def resources(self) -> tuple[int, str]:
        return 1, "none"


def _shards(folder: Path, n: int, mib: int) -> None:
    folder.mkdir(parents=True)
    rows = 64
    text = os.urandom(mib * 2**20 // rows // 2).hex()  # random hex: Parquet cannot compress it away
    for i in range(n):
        table = pa.table({"id": [f"{i}-{r}" for r in range(rows)], "text": [text] * rows})
        pq.write_table(table, folder / f"part-{i:05d}.parquet", compression="none")


def _peak_rss_during(fn) -> tuple[float, float]:
    """(baseline MiB, peak MiB above it) of this process while ``fn`` runs."""
    import psutil

    proc, peak, stop = psutil.Process(), [0], threading.Event()
    base = proc.memory_info().rss

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        fn()
    finally:
        stop.set()
        t.join()
    return base / 2**20, max(0, peak[0] - base) / 2**20


@click.command(help=__doc__)
@click.option("--shards", default="8,32", show_default=True, help="Backlog sizes (pending input shards).")
@click.option("--shard-mib", default=8, show_default=True, help="Size of one input shard.")
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(shards, shard_mib, out):
    import ray
    from _machine import cpu_name

    from humpback.core.config import RayConfig
    from humpback.core.units import map_shards

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=2 * 2**30)
    address = ray.get_runtime_context().gcs_address
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in shards.split(",")):
            inputs, outputs = Path(tmp) / f"in-{n}", Path(tmp) / f"out-{n}"
            _shards(inputs, n, shard_mib)
            start = time.perf_counter()
            run = partial(map_shards, inputs, outputs, {"n": n}, IdsJob(), RayConfig(address=address, workers=1))
            base, peak = _peak_rss_during(run)
            rows.append({"shards": n, "backlog_mib": n * shard_mib, "driver_baseline_mib": round(base),
                         "driver_peak_above_baseline_mib": round(peak), "seconds": round(time.perf_counter() - start, 1)})
            click.echo(json.dumps(rows[-1]))
    ray.shutdown()
    if out:
        import subprocess

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        Path(out).write_text(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "commit": commit,
                                         "shard_mib": shard_mib, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

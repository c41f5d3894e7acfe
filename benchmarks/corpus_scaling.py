"""The corpus stage on datatrove: 1 against 2 workers and earlier stages on the same real pages, and
its peak memory from 1k to 100k segments.

    apt-get install python3.11-doc                      # 530 real HTML pages nobody here wrote
    python benchmarks/corpus_scaling.py [--pages DIR] [--before REV ...] [--segments 1000 --segments 100000] [--out FILE]

1. Throughput: data/raw from the pages (a `files` source), then in one run, each in a fresh
   interpreter: the corpus stage of each ``--before`` revision (one process, as it was), and today's
   with ``workers`` 1 and 2 (``tasks`` 16), in ``rounds`` interleaved rounds, the fastest run of each
   kept (the machine is shared). No cap, the paper's 600-3,000 characters, shards of 1,000 segments
   (the demo's 16 would make the output's 130 small files a cost of their own). Reports input segments/s
   and pages/s; ratios, not seconds, carry over to another machine. Each round also measures what the
   machine itself gives a second process (a pure-Python loop alone, then two at once): on a VM whose
   second vCPU is shared that ceiling is below 2x, and the stage's gain is read against it
   (the machine is measured before and after each round, and the two averaged).
2. Memory: synthetic documents of 10 header segments each, every segment distinct English prose that
   passes the filters (words drawn from the pages), so every one reaches both dedup steps. Peak RSS of
   the stage's whole process tree (the stage and its workers, polled), at each ``--segments``.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[1]

CORPUS_RUN = """
import json, sys, time
from humpback.data import config as c
from humpback.data.corpus import build_corpus
raw, out, workers, tasks, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
new = hasattr(c, "CorpusRunConfig")
cfg = c.CorpusConfig(max_segments=None, max_segments_per_document=None, max_chars=3000, shard_size=1000,
                     **({"tasks": tasks} if new else {}))
kw = {"run": c.CorpusRunConfig(workers=workers, work_dir=work)} if new else {}
start = time.perf_counter()
report = build_corpus(cfg, raw, out, progress=False, **kw)
seconds = time.perf_counter() - start
m = report.metrics()
print(json.dumps({"seconds": round(seconds, 2), "documents": m["documents"]["read"], "input_segments": m["segments"]["input"],
                  "kept": m["segments"]["kept"], "dropped": m["segments"]["dropped"]}))
"""


class PeakRSS(threading.Thread):
    """The largest sum of RSS over a process and its children, polled."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.done = pid, every, 0, False

    def run(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
            while not self.done:
                total = 0
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
                time.sleep(self.every)
        except psutil.Error:
            pass


PROBE = "s = 0\nfor i in range(20_000_000):\n    s += i * i"


def _probe(processes: int) -> float:
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", PROBE]) for _ in range(processes)]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - start


def _machine_second_core() -> float:
    """Work per second of two processes at once over one alone, on a loop that shares no data: the most
    any program can get from this machine's second core right now."""
    one = _probe(1)
    return round(2 * one / _probe(2), 2)


def _steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests, summed over this machine's CPUs (/proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _corpus(raw: Path, out: Path, src: Path, workers: int, tasks: int, work: Path) -> dict:
    import resource

    env = {**os.environ, "PYTHONPATH": str(src)}
    before, steal = resource.getrusage(resource.RUSAGE_CHILDREN), _steal_seconds()
    proc = subprocess.Popen([sys.executable, "-c", CORPUS_RUN, str(raw), str(out), str(workers), str(tasks), str(work)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = PeakRSS(proc.pid)
    peak.start()
    stdout, stderr = proc.communicate()
    peak.done = True
    peak.join()
    if proc.returncode:
        raise RuntimeError(stderr[-3000:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(stdout.strip().splitlines()[-1])
    # CPU seconds of the stage and its workers (the interpreter's start included), and what the host
    # took away meanwhile: a second worker that adds wall time but no CPU time is waiting on the host
    result["cpu_seconds"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    result["stolen_seconds"] = round(_steal_seconds() - steal, 2)
    result["input_segments_per_s"] = round(result["input_segments"] / result["seconds"], 1)
    result["pages_per_s"] = round(result["documents"] / result["seconds"], 1)
    result["peak_rss_mib"] = round(peak.peak / 2**20)
    return result


def _vocabulary(raw: Path, size: int = 3000) -> list[str]:
    from humpback.core.shards import read_shards

    words = Counter()
    for table in read_shards(raw):
        for text in table["text"].to_pylist():
            words.update(w for w in re.findall(r"[a-z]{3,10}", re.sub(r"<[^>]+>", " ", text)))
    return [w for w, _ in words.most_common(size)]


def _synthetic_raw(vocab: list[str], segments: int, folder: Path) -> None:
    """segments/10 documents of 10 header sections, each about 900 characters of distinct sentences."""
    import pyarrow as pa

    from humpback.core.shards import RAW_ROW_GROUP, RAW_SCHEMA, ShardWriter
    from humpback.data.dedup import content_id

    rng = random.Random(0)

    def sentence() -> str:
        words = rng.choices(vocab, k=rng.randint(8, 16))
        return " ".join(words).capitalize() + "."

    with ShardWriter(folder, RAW_SCHEMA, 1000, row_group_size=RAW_ROW_GROUP) as writer:  # as the raw stage writes
        for d in range(segments // 10):
            sections = [f"## {' '.join(rng.choices(vocab, k=3)).title()}\n\n" + " ".join(sentence() for _ in range(9))
                        for _ in range(10)]
            text = "\n\n".join(sections)
            writer.add({"id": content_id(text), "source": "files", "url": f"synthetic://{d}", "name": None,
                        "license": None, "format": "markdown", "text": text, "date": None})
    del pa


@click.command(help=__doc__)
@click.option("--pages", "pages_dir", default="/usr/share/doc/python3.11/html", show_default=True,
              type=click.Path(exists=True, file_okay=False))
@click.option("--before", multiple=True, help="A git revision whose corpus stage runs beside today's (repeatable).")
@click.option("--segments", multiple=True, type=int, help="Synthetic segment counts for the memory run (repeatable).")
@click.option("--tasks", default=16, show_default=True)
@click.option("--rounds", default=3, show_default=True, help="Interleaved repeats; the fastest of each is reported.")
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(pages_dir, before, segments, tasks, rounds, out):
    from _machine import cpu_name

    from humpback.data.config import FilesSource, RawConfig
    from humpback.data.raw import build_raw

    root = Path(pages_dir)
    pages = sorted(root.rglob("*.html"))
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "pages": len(pages), "pages_dir": pages_dir, "tasks": tasks}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        only_pages = tmp / "pages"
        for page in pages:
            (only_pages / page.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            (only_pages / page.relative_to(root)).write_bytes(page.read_bytes())
        build_raw(RawConfig(path="/", sources=[FilesSource(type="files", path=str(only_pages))]), tmp / "raw",
                  progress=False)
        trees = {}
        for rev in before:
            trees[rev] = tmp / f"before-{rev}"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(trees[rev]), rev], check=True)
        configs = {**{f"before {rev}": (src / "src", 1, f"out-{rev}") for rev, src in trees.items()},
                   **{f"datatrove, {w} worker(s)": (ROOT / "src", w, f"out-{w}") for w in (1, 2)}}
        runs: dict[str, dict] = {}
        machine, stage = [], []  # per round: the machine's second core, the stage's
        try:
            for _ in range(rounds):  # interleaved rounds, the fastest of each kept: the machine is shared
                before_round = _machine_second_core()
                this_round = {}
                for name, (src, workers, out_name) in configs.items():
                    r = this_round[name] = _corpus(tmp / "raw", tmp / out_name, src, workers, tasks, tmp / "w")
                    if name not in runs or r["seconds"] < runs[name]["seconds"]:
                        runs[name] = r
                machine.append(round((before_round + _machine_second_core()) / 2, 2))  # before and after
                stage.append(round(this_round["datatrove, 1 worker(s)"]["seconds"]
                                   / this_round["datatrove, 2 worker(s)"]["seconds"], 2))
                click.echo(f"round {len(stage)}: the stage's second core {stage[-1]}x, the machine's {machine[-1]}x",
                           err=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
        result["rounds"] = rounds
        same = [p.read_bytes() for p in sorted((tmp / "out-1").glob("*.parquet"))] == \
               [p.read_bytes() for p in sorted((tmp / "out-2").glob("*.parquet"))]
        result["throughput"] = runs
        result["same_bytes_1_and_2_workers"] = same
        two, one = runs["datatrove, 2 worker(s)"], runs["datatrove, 1 worker(s)"]
        result["second_core_speedup"] = round(two["input_segments_per_s"] / one["input_segments_per_s"], 2)
        result["second_core_per_round"] = {"stage": stage, "machine": machine}
        result["second_core_median_of_rounds"] = {"stage": statistics.median(stage), "machine": statistics.median(machine)}
        # the stage's gain as a share of what the machine gave a second process in the same round
        result["second_core_of_machine"] = round(statistics.median(s / m for s, m in zip(stage, machine)), 2)
        for rev in before:
            b = runs[f"before {rev}"]
            result[f"speedup_over_{rev}"] = {
                "input_segments_per_s": round(two["input_segments_per_s"] / b["input_segments_per_s"], 2),
                "pages_per_s": round(two["pages_per_s"] / b["pages_per_s"], 2)}
        if segments:
            vocab = _vocabulary(tmp / "raw")
            result["memory"] = {}
            for n in segments:
                _synthetic_raw(vocab, n, tmp / f"syn-{n}")
                r = _corpus(tmp / f"syn-{n}", tmp / f"syn-out-{n}", ROOT / "src", 2, tasks, tmp / "w")
                result["memory"][str(n)] = r
                click.echo(f"{n} segments: {r}", err=True)
            # the second core at scale: the largest synthetic corpus with 1 and 2 workers, interleaved
            # rounds as above (the first 2-worker run is the memory run), the machine's own gain in each
            n = max(segments)
            best = {1: None, 2: result["memory"][str(n)]}
            per_round = {"stage": [], "machine": []}
            for i in range(rounds):
                before_round = _machine_second_core()
                two = best[2] if i == 0 else _corpus(tmp / f"syn-{n}", tmp / f"syn-out-{n}", ROOT / "src", 2, tasks, tmp / "w")
                one = _corpus(tmp / f"syn-{n}", tmp / f"syn-out-{n}-1", ROOT / "src", 1, tasks, tmp / "w")
                per_round["machine"].append(round((before_round + _machine_second_core()) / 2, 2))
                per_round["stage"].append(round(one["seconds"] / two["seconds"], 2))
                click.echo(f"{n} segments, round {i + 1}: the stage's second core {per_round['stage'][-1]}x, "
                           f"the machine's {per_round['machine'][-1]}x", err=True)
                for w, r in ((1, one), (2, two)):
                    if best[w] is None or r["seconds"] < best[w]["seconds"]:
                        best[w] = r
            result["memory"][f"{n}, 1 worker (fastest)"] = best[1]
            result["memory"][f"{n}, 2 workers (fastest)"] = best[2]
            result["second_core_speedup_synthetic"] = round(best[1]["seconds"] / best[2]["seconds"], 2)
            result["second_core_per_round_synthetic"] = per_round
            result["second_core_median_of_rounds_synthetic"] = {k: statistics.median(v) for k, v in per_round.items()}
            result["second_core_of_machine_synthetic"] = round(statistics.median(
                s / m for s, m in zip(per_round["stage"], per_round["machine"])), 2)
    click.echo(json.dumps(result, indent=2))
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

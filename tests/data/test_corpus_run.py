"""Where the corpus stage's datatrove tasks run: the same bytes for the same tasks with 1 or 2 local
workers, a crashed run resumed task by task, and datatrove's Slurm executor through sbatch and srun
stand-ins that run each job array here (no Slurm runs on this machine)."""

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from _texts import TEXTS
from humpback.core.config import ConfigError
from humpback.core.shards import shard_files
from humpback.data import steps
from humpback.data.config import CorpusConfig, CorpusRunConfig, FilesSource, RawConfig
from humpback.data.corpus import build_corpus
from humpback.data.executors import CorpusRunError
from humpback.data.raw import build_raw
from humpback.params import parse_config


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Twelve pages, some sharing sections exactly or nearly, as data/raw."""
    root = tmp_path_factory.mktemp("corpus-run")
    d = root / "pages"
    d.mkdir()
    topics = ("tea", "bikes", "gardening", "sourdough", "astronomy")
    for i in range(12):
        # every third page repeats the tea section word for word; the others nearly repeat each other's
        a, b = ("tea", "", ) if i % 3 == 0 else (topics[i % 5], f" Page {i}."), topics[(i + 2) % 5]
        a, tail = a
        (d / f"page{i:02d}.md").write_text(f"# Page {i}\n\n## {a.title()}\n\n{TEXTS[a]}{tail}\n\n"
                                           f"## {b.title()}\n\n{TEXTS[b]} Noted on page {i}.\n")
    build_raw(RawConfig(path=str(d), sources=[FilesSource(type="files", path=str(d))]), root / "raw", progress=False)
    return root / "raw"


CFG = CorpusConfig(tasks=3, max_segments=None, max_segments_per_document=None, min_chars=300, shard_size=4,
                   dedup={"buckets": 4, "hashes_per_bucket": 4})


def _outputs(out: Path, report) -> dict:
    files = {p.name: p.read_bytes() for p in shard_files(out)}
    return {"shards": files, "metrics": json.dumps(report.metrics()), "manifest": (out / "manifest.json").read_bytes()}


def test_one_or_two_workers_write_the_same_bytes(raw, tmp_path):
    one = build_corpus(CFG, raw, tmp_path / "one", progress=False, run=CorpusRunConfig(workers=1, work_dir=str(tmp_path / "w1")))
    two = build_corpus(CFG, raw, tmp_path / "two", progress=False, run=CorpusRunConfig(workers=2, work_dir=str(tmp_path / "w2")))
    assert _outputs(tmp_path / "one", one) == _outputs(tmp_path / "two", two)
    dropped = one.metrics()["segments"]["dropped"]
    assert dropped["exact_duplicate"] > 0 and dropped["near_duplicate"] > 0  # both dedup steps did work
    assert one.segments_kept + sum(dropped.values()) == one.segments_input


def test_a_crashed_run_resumes_with_the_tasks_that_did_not_finish(raw, tmp_path, monkeypatch):
    """Task 1 dies on page 5: task 0 stays done, and the rerun segments only the documents of tasks 1
    and 2; the result is the bytes of a run that never crashed."""
    from humpback.data.steps import raw_row_groups, task_block

    run = CorpusRunConfig(workers=1, work_dir=str(tmp_path / "work"))
    task0, task1 = (task_block(raw_row_groups(raw), r, CFG.tasks) for r in (0, 1))
    assert task1[0] <= 5 < task1[1]  # the blocks split the bytes, not the page count
    cut, content_id = steps.segment, steps.content_id
    seen: list[str] = []

    def dies_on_page_5(text):
        if "Noted on page 5." in text:
            raise MemoryError("killed")  # not a parser error: the task dies
        return content_id(text)

    monkeypatch.setattr(steps, "segment", lambda text, *a: seen.append(text.split("\n", 1)[0]) or cut(text, *a))
    monkeypatch.setattr(steps, "content_id", dies_on_page_5)
    with pytest.raises(MemoryError):
        build_corpus(CFG, raw, tmp_path / "out", progress=False, run=run)
    assert seen == [f"# Page {i}" for i in range(6)]  # task 0, then task 1 up to page 5
    (done,) = (tmp_path / "work").iterdir()
    assert sorted(p.name for p in (done / "logs" / "segment" / "completions").iterdir()) == ["00000"]

    seen.clear()
    monkeypatch.setattr(steps, "content_id", content_id)
    resumed = build_corpus(CFG, raw, tmp_path / "out", progress=False, run=run)
    assert seen == [f"# Page {i}" for i in range(task0[1], 12)]  # task 0's pages not again
    clean = build_corpus(CFG, raw, tmp_path / "clean", progress=False, run=CorpusRunConfig(work_dir=str(tmp_path / "w2")))
    assert _outputs(tmp_path / "out", resumed) == _outputs(tmp_path / "clean", clean)
    assert not any((tmp_path / "work").iterdir())



def test_a_run_killed_while_it_removes_its_work_folder_reruns_from_scratch(raw, tmp_path, monkeypatch):
    """Regression (CI, the e2e kill test): a SIGKILL while the finished run removed its work folder left
    the completion marks of tasks whose files were already gone, and the rerun failed reading them."""
    from humpback.data import corpus

    run = CorpusRunConfig(workers=1, work_dir=str(tmp_path / "work"))
    rmtree = corpus.rmtree

    def killed_halfway(path, *a, **k):  # the task files go first, the completion marks stay
        if Path(path).exists():
            for sub in ("segments", "unique"):
                rmtree(Path(path) / sub)
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(corpus, "rmtree", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(CFG, raw, tmp_path / "out", progress=False, run=run)
    monkeypatch.setattr(corpus, "rmtree", rmtree)
    rerun = build_corpus(CFG, raw, tmp_path / "out", progress=False, run=run)
    clean = build_corpus(CFG, raw, tmp_path / "clean", progress=False, run=CorpusRunConfig(work_dir=str(tmp_path / "w2")))
    assert _outputs(tmp_path / "out", rerun) == _outputs(tmp_path / "clean", clean)
    assert not any((tmp_path / "work").iterdir())  # the half-removed folder is gone too

FAKE_SBATCH = r'''#!PYTHON
"""sbatch as a one-machine Slurm would run it: each array index of the script, now, in order."""
import os, re, subprocess, sys
args, script = sys.argv[1:-1], sys.argv[-1]
counter = os.path.join(os.environ["FAKE_SLURM_DIR"], "jobs")
job = sum(1 for _ in open(counter)) + 1 if os.path.exists(counter) else 1
with open(counter, "a") as f:
    f.write(" ".join(args) + "\n")
env = dict(os.environ, SLURM_NODELIST="localhost", SLURM_JOB_ID=str(job))
for a in args:
    if a.startswith("--export=ALL,"):
        env.update(kv.split("=", 1) for kv in a[len("--export=ALL,"):].split(","))
text = open(script).read()
first, last = map(int, re.search(r"#SBATCH --array=(\d+)-(\d+)", text).groups())
if not os.environ.get("FAKE_SLURM_LOSE_JOBS"):
    for i in range(first, last + 1):
        with open(os.path.join(os.environ["FAKE_SLURM_DIR"], f"job{job}_{i}.log"), "w") as log:
            subprocess.run(["bash", script], env=dict(env, SLURM_ARRAY_TASK_ID=str(i)), stdout=log, stderr=log)
print(f"Submitted batch job {job}")
'''
FAKE_SRUN = r'''#!PYTHON
"""srun -l -n N CMD...: run CMD here."""
import os, sys
args = sys.argv[1:]
while args and args[0].startswith("-"):
    args = args[2:] if args[0] == "-n" else args[1:]
os.execvp(args[0], args)
'''


def _fake_slurm(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("squeue", "#!/bin/sh\nexit 0\n"),
                       ("scontrol", "#!/bin/sh\necho localhost\n")):  # scontrol show hostnames $SLURM_NODELIST
        path = bin_dir / name
        path.write_text(body.replace("#!PYTHON", f"#!{sys.executable}"))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(tmp_path))
    return tmp_path / "jobs"


SLURM = {"executor": "slurm", "slurm": {"partition": "cpu", "time": "0:10:00", "poll_seconds": 0.1}}
SMALL = CFG.model_copy(update={"tasks": 2, "dedup": CFG.dedup.model_copy(update={"exact": False, "buckets": 2})})


def test_slurm_runs_each_step_as_a_job_array_after_the_one_before(raw, tmp_path, monkeypatch):
    jobs = _fake_slurm(tmp_path, monkeypatch)
    run = CorpusRunConfig(**SLURM, work_dir=str(tmp_path / "work"))
    report = build_corpus(SMALL, raw, tmp_path / "slurm", progress=False, run=run)
    local = build_corpus(SMALL, raw, tmp_path / "local", progress=False, run=CorpusRunConfig(work_dir=str(tmp_path / "w")))
    assert _outputs(tmp_path / "slurm", report) == _outputs(tmp_path / "local", local)
    submitted = jobs.read_text().splitlines()
    # segment, minhash-buckets, minhash-cluster, each followed by its stats merge; each step after the first
    # waits for the one before
    arrays = [line for line in submitted if "RUN_OFFSET" in line]
    assert len(arrays) == 3 and "--dependency" not in arrays[0]
    assert "--dependency=afterok:1" in arrays[1] and "--dependency=afterok:3" in arrays[2]


def test_slurm_names_the_job_that_left_the_queue_unfinished(raw, tmp_path, monkeypatch):
    _fake_slurm(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_SLURM_LOSE_JOBS", "1")
    run = CorpusRunConfig(**SLURM, work_dir=str(tmp_path / "work"))
    with pytest.raises(CorpusRunError, match=r"corpus step segment \(Slurm job 1\) left the queue with tasks \[0, 1\]"):
        build_corpus(SMALL, raw, tmp_path / "out", progress=False, run=run)


def test_slurm_needs_a_partition_and_sbatch(raw, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="corpus_run.*slurm.partition"):
        parse_config({"corpus_run": {"executor": "slurm"}})
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CorpusRunError, match="sbatch is not on PATH"):
        build_corpus(SMALL, raw, tmp_path / "out", progress=False, run=CorpusRunConfig(**SLURM, work_dir=str(tmp_path)))


def test_a_slurm_time_that_yaml_read_as_seconds_is_a_time_again():
    """Regression: `dvc exp run -S` rewrites params.yaml without the quotes of "4:00:00", which YAML 1.1
    then reads as 14400, and every stage's whole-file check failed."""
    import yaml

    written = yaml.safe_load("corpus_run:\n  slurm:\n    time: 4:00:00\n")
    assert written["corpus_run"]["slurm"]["time"] == 14400
    assert parse_config(written).corpus_run.slurm.time == "4:00:00"
    assert parse_config({"corpus_run": {"slurm": {"time": 90}}}).corpus_run.slurm.time == "0:01:30"


def test_the_tasks_read_every_document_of_many_raw_shards_once_in_order(raw, tmp_path):
    """Task blocks cross raw shard and row group boundaries (3 shards of 5, 5 and 2 documents, row groups
    of 2, here): every document is read by exactly one task, and the tasks in order give data/raw's order, for any number of tasks."""
    from humpback.core.shards import RAW_SCHEMA, ShardWriter, read_table
    from humpback.data.steps import ReadRaw

    rows = read_table(raw).to_pylist()
    with ShardWriter(tmp_path / "raw", RAW_SCHEMA, 5, row_group_size=2) as writer:
        for row in rows:
            writer.add(row)
    assert len(shard_files(tmp_path / "raw")) == 3
    for tasks in (1, 2, 5, 16):
        read = [d.text for r in range(tasks) for d in ReadRaw(tmp_path / "raw").run(rank=r, world_size=tasks)]
        assert read == [row["text"] for row in rows], tasks
    plain = CFG.model_copy(update={"tasks": 5, "dedup": CFG.dedup.model_copy(update={"exact": False, "near": False})})
    report = build_corpus(plain, tmp_path / "raw", tmp_path / "out", progress=False,
                          run=CorpusRunConfig(work_dir=str(tmp_path / "w")))
    assert report.documents_read == len(rows) and "exact_duplicate" not in report.segments_dropped
    assert report.segments_kept + sum(report.segments_dropped.values()) == report.segments_input


def test_the_tasks_split_the_raw_bytes_evenly_and_read_only_their_row_groups(tmp_path, monkeypatch):
    """Pages differ in size a thousandfold: a block of equal bytes, not of equal documents, is equal
    work. The cuts come from the Parquet footers, and each task reads only the row groups of its block."""
    import pyarrow.parquet as pq

    from humpback.core.shards import RAW_SCHEMA, ShardWriter
    from humpback.data.steps import ReadRaw, raw_row_groups, task_block

    sizes = [200] * 30 + [40_000] + [200] * 30 + [9_000] * 3  # one huge page, a few large ones
    rows = [{"id": f"{i}", "source": "files", "url": f"p{i}", "name": None, "license": None, "format": "text",
             "text": f"{i} " + "word " * (n // 5), "date": None} for i, n in enumerate(sizes)]
    with ShardWriter(tmp_path / "raw", RAW_SCHEMA, 40, row_group_size=4) as writer:
        for row in rows:
            writer.add(row)
    groups = raw_row_groups(tmp_path / "raw")
    assert [g.rows for g in groups] == [4] * 10 + [4] * 6
    tasks = 4
    blocks = [task_block(groups, r, tasks) for r in range(tasks)]
    assert blocks[0][0] == 0 and blocks[-1][1] == len(rows)
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))  # contiguous, in order
    text = [len(r["text"]) for r in rows]
    share, largest = sum(text) / tasks, max(sum(text[g.first:g.first + g.rows]) for g in groups)
    assert all(abs(sum(text[lo:hi]) - share) <= largest for lo, hi in blocks), blocks
    by_count = [(len(rows) * r // tasks, len(rows) * (r + 1) // tasks) for r in range(tasks)]
    assert max(sum(text[lo:hi]) for lo, hi in blocks) < max(sum(text[lo:hi]) for lo, hi in by_count)

    read_groups: list[int] = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda self, i, *a, **k: read_groups.append(i) or real(self, i, *a, **k))
    for r, (lo, hi) in enumerate(blocks):
        read_groups.clear()
        docs = list(ReadRaw(tmp_path / "raw").run(rank=r, world_size=tasks))
        assert [d.metadata["doc"] for d in docs] == list(range(lo, hi))
        spanned = [g.index for g in groups if g.first < hi and g.first + g.rows > lo]
        assert read_groups == spanned  # its own row groups, each once; never the whole shard


def test_datatrove_task_loggers_look_up_pythons_library_folders_once(monkeypatch):
    """Each task adds three loguru sinks, and loguru looked up the library folders through sysconfig for
    each (24 ms a task); quiet_datatrove keeps the first answer, which stays the same answer."""
    import sysconfig

    from loguru import logger
    from loguru._better_exceptions import ExceptionFormatter

    from humpback.data.executors import quiet_datatrove

    quiet_datatrove()
    lookups = []
    real = sysconfig.get_scheme_names
    monkeypatch.setattr(sysconfig, "get_scheme_names", lambda: lookups.append(1) or real())
    sinks = [logger.add(sys.stderr, level="ERROR") for _ in range(3)]
    for sink in sinks:
        logger.remove(sink)
    assert lookups == []
    assert ExceptionFormatter._get_lib_dirs() == ExceptionFormatter._get_lib_dirs.__wrapped__()


def test_local_workers_are_forked_once_for_every_step(raw, tmp_path, monkeypatch):
    """datatrove's local executor starts a Manager and forks a Pool per step (0.1 s a step); the stage
    forks one pool for all its steps, and every task of every step runs on one of its workers."""
    from humpback.data import executors

    seen = tmp_path / "pids"
    run_task = executors._run_task

    def recorded(executor, rank):
        with open(seen, "a") as f:
            f.write(f"{Path(executor.logging_dir.path).name} {os.getpid()}\n")
        return run_task(executor, rank)

    monkeypatch.setattr(executors, "_run_task", recorded)
    report = build_corpus(CFG, raw, tmp_path / "out", progress=False,
                          run=CorpusRunConfig(workers=2, work_dir=str(tmp_path / "work")))
    rows = [line.split() for line in seen.read_text().splitlines()]
    multi = {step for step, _ in rows if step in ("segment", "exact-filter", "minhash-buckets")}
    assert multi == {"segment", "exact-filter", "minhash-buckets"}
    workers = {pid for step, pid in rows if step in multi}
    assert 1 <= len(workers) <= 2 and str(os.getpid()) not in workers
    assert {pid for step, pid in rows if step not in multi} == {str(os.getpid())}  # one-task steps: here
    assert report.segments_kept > 0

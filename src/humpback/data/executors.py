"""Run the corpus stage's datatrove steps with datatrove's executors: local, Ray or Slurm.

Each step of the plan (:class:`Step`) runs ``tasks`` tasks, one after another step: datatrove
marks a finished task in ``<work>/logs/<step>/completions``, so a rerun after a crash or a kill does
only the tasks that did not finish. What a task counted comes back from its stats file, whichever
machine ran it, which is why the work folder must be shared storage for Ray and Slurm.

- ``local``: a process pool of ``corpus_run.workers`` (every core by default) on this machine, forked
  once for all the steps.
- ``ray``: datatrove's Ray executor on ``ray.address`` (else ``$RAY_ADDRESS``, else a Ray started
  here), the cluster the model stages use.
- ``slurm``: datatrove's Slurm executor, one sbatch job array per step, each depending on the one
  before; the stage waits for the last, reading the completions, and stops with the log folder named
  if a job left the queue unfinished.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

from humpback.core.config import RayConfig
from humpback.data.config import CorpusRunConfig

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str  # a folder name: <work>/logs/<name>
    pipeline: list
    tasks: int
    warm: Callable[[], object] | None = None  # loads what every task needs, once, before local workers fork


class CorpusRunError(RuntimeError):
    """A step whose tasks did not all finish; its work stays for a rerun."""


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _logging_dir(work: Path, step: Step) -> str:
    return str(Path(work).resolve() / "logs" / step.name)


def _local(step: Step, run: CorpusRunConfig, work: Path):
    """datatrove's local executor for ``step``: its tasks, logs and completions (``_run_local`` runs them)."""
    from datatrove.executor import LocalPipelineExecutor

    workers = min(run.workers or default_workers(), step.tasks)
    return LocalPipelineExecutor(step.pipeline, tasks=step.tasks, workers=workers, logging_dir=_logging_dir(work, step),
                                 start_method="fork")


def _ray(step: Step, run: CorpusRunConfig, work: Path):
    from datatrove.executor.ray import RayPipelineExecutor

    return RayPipelineExecutor(step.pipeline, tasks=step.tasks, workers=run.workers or -1,
                               logging_dir=_logging_dir(work, step), cpus_per_task=run.cpus_per_task,
                               mem_per_cpu_gb=run.mem_per_cpu_gb)


def slurm_executor(step: Step, run: CorpusRunConfig, work: Path, depends=None):
    from datatrove.executor.slurm import SlurmPipelineExecutor

    s = run.slurm
    return SlurmPipelineExecutor(
        step.pipeline, tasks=step.tasks, time=s.time, partition=s.partition, cpus_per_task=s.cpus_per_task,
        mem_per_cpu_gb=s.mem_per_cpu_gb, workers=run.workers or -1, job_name=f"humpback-corpus-{step.name}",
        qos=s.qos, env_command=s.env_command, sbatch_args=dict(s.sbatch_args) or None, depends=depends,
        logging_dir=_logging_dir(work, step), mail_type="NONE")


def step_counts(work: Path, step: Step) -> list[Counter]:
    """What each pipeline step of ``step`` counted, summed over its tasks' stats files."""
    counts = [Counter() for _ in step.pipeline]
    for rank in range(step.tasks):
        with open(Path(_logging_dir(work, step)) / "stats" / f"{rank:05d}.json") as f:
            for i, stat in enumerate(json.load(f)):
                for label, value in stat["stats"].items():
                    counts[i][label] += int(value["total"] if isinstance(value, dict) else value)
    return counts


def _unfinished(executor, step: Step) -> list[int]:
    return executor.get_incomplete_ranks(range(step.tasks), skip_completed=True)


def quiet_datatrove() -> None:
    """datatrove prints each task's pipeline and stats to stderr, and its dedup steps draw bars of their
    own; the logs stay in its log files (``<work>/logs/<step>/logs``) and only errors and warnings
    come through."""
    import datatrove.executor.base as base
    import datatrove.utils.logging as trove_logging
    from loguru import logger

    if getattr(base, "_humpback_quiet", False):
        return
    add_task_logger = trove_logging.add_task_logger

    def default_logger():
        logger.remove()
        logger.add(sys.stderr, level="WARNING", colorize=False)

    def task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
        return add_task_logger(logging_dir, rank, max(local_rank, 1), node_rank=node_rank)  # stderr: errors only

    trove_logging.setup_default_logger = default_logger
    base.add_task_logger = task_logger
    # the dedup steps' own bars ("Reading dup files", ...) ignore --no-progress; the stage has its own
    import datatrove.pipeline.dedup.exact_dedup as exact
    import datatrove.pipeline.dedup.minhash as minhash
    from tqdm import tqdm

    for module in (exact, minhash):
        module.tqdm = partial(tqdm, disable=True)
    _cache_loguru_lib_dirs()
    base._humpback_quiet = True
    default_logger()


def _cache_loguru_lib_dirs() -> None:
    """datatrove adds three loguru sinks per task (its log file, stderr, stderr again after it), and
    loguru looks up Python's library folders through ``sysconfig`` for each: 8 ms a sink, 24 ms a task,
    most of a small task's cost (1.1 s of CPU over the 48 tasks of a 16-task plan). The folders do not
    change while the process runs, so they are looked up once."""
    try:
        from loguru._better_exceptions import ExceptionFormatter
    except ImportError:  # loguru moved it: every sink pays again, nothing breaks
        return
    lookup = ExceptionFormatter.__dict__.get("_get_lib_dirs")
    if isinstance(lookup, staticmethod) and not hasattr(lookup.__func__, "cache_info"):
        ExceptionFormatter._get_lib_dirs = staticmethod(cache(lookup.__func__))


def run_steps(steps: list[Step], run: CorpusRunConfig, ray: RayConfig, work: Path) -> None:
    """Run ``steps`` in order, each to the end of all its tasks; raise :class:`CorpusRunError` otherwise."""
    quiet_datatrove()
    if run.executor == "slurm":
        return _run_slurm(steps, run, work)
    if run.executor == "ray":
        from humpback.core.cluster import connect, ray_address

        connect(ray_address(ray) or "local")  # "local": a Ray on this machine
    if run.executor == "local":
        return _run_local(steps, run, work)
    for step in steps:
        executor = _ray(step, run, work)
        started = time.perf_counter()
        executor.run()
        _check_finished(executor, step, work, started)


def _check_finished(executor, step: Step, work: Path, started: float) -> None:
    missing = _unfinished(executor, step)
    if missing:
        raise CorpusRunError(f"corpus step {step.name}: tasks {missing} did not finish; see "
                             f"{_logging_dir(work, step)}/logs (a rerun does only those)")
    log.info("corpus step %s: %d task(s) in %.1fs", step.name, step.tasks, time.perf_counter() - started)


def _run_local(steps: list[Step], run: CorpusRunConfig, work: Path) -> None:
    """datatrove's local executor with one process pool for all the steps. Its own ``run`` starts a
    Manager and forks a Pool for every step: 0.1 s a step, a tenth of a small corpus's run on two
    cores. The tasks still run through the executor's ``_run_for_rank``: the same logs, stats and
    completion marks, and a task that raises stops the stage with its error."""
    import multiprocess

    _import_before_fork()
    for step in steps:
        if step.warm is not None:
            step.warm()  # the forked workers share it (the language model)
    workers = min(run.workers or default_workers(), max(step.tasks for step in steps))
    # fork: the workers start in a blink and inherit the imports and the warm state
    pool = multiprocess.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        for step in steps:
            executor = _local(step, run, work)
            started = time.perf_counter()
            ranks = executor.get_incomplete_ranks(range(step.tasks))
            if ranks:
                executor.save_executor_as_json()
                if pool is None or len(ranks) == 1:
                    pipeline = executor.pipeline
                    for rank in ranks:  # here, as datatrove runs one worker: a fresh copy of the steps a task
                        executor.pipeline = deepcopy(pipeline)
                        _run_task(executor, rank)
                else:
                    for _ in pool.imap_unordered(partial(_run_task, executor), ranks):
                        pass
            _check_finished(executor, step, work, started)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _run_task(executor, rank: int) -> None:
    executor._run_for_rank(rank, local_rank=1)  # local rank 1: the task's log goes to its file, not stderr


def _import_before_fork() -> None:
    """What pyarrow imports on first use (pandas and pyarrow.compute, behind ``Table.from_pylist``),
    imported once here, before the workers fork: each paid 0.3 s for it in its first task."""
    import pandas  # noqa: F401
    import pyarrow.compute  # noqa: F401


def _run_slurm(steps: list[Step], run: CorpusRunConfig, work: Path) -> None:
    if shutil.which("sbatch") is None:
        raise CorpusRunError("corpus_run.executor is slurm but sbatch is not on PATH: run the stage on a Slurm "
                             "login node, or use executor local or ray")
    executors = []
    for step in steps:
        executors.append(slurm_executor(step, run, work, depends=executors[-1] if executors else None))
    executors[-1].run()  # submits every step, each job array depending on the one before
    for executor, step in zip(executors, steps):
        while missing := _unfinished(executor, step):
            if executor.job_id and not _in_queue(executor.job_id):
                raise CorpusRunError(f"corpus step {step.name} (Slurm job {executor.job_id}) left the queue with "
                                     f"tasks {missing} unfinished; see {_logging_dir(work, step)}/logs and "
                                     f"{executor.slurm_logs_folder}; a rerun submits only those")
            time.sleep(run.slurm.poll_seconds)
        log.info("corpus step %s: %d task(s) done on Slurm", step.name, step.tasks)


def _in_queue(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-j", str(job_id)], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())

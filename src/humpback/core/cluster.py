"""Where the model work of augment, score@i and answer@m runs: in the stage's own process, or on a
Ray cluster through Ray Data (an actor pool, one model replica per actor).

A stage describes its work as a :class:`Job` (settings only, so it can travel to other machines;
its engine is built by ``setup`` in whichever process runs it) and a list of :class:`Unit` s (the
missing output shards). :func:`run_units` runs them here, one after another, or, when a Ray address
is configured (``ray.address`` or ``$RAY_ADDRESS``), as a Ray dataset mapped by ``map_batches``
over a pool of actors. Either way every unit's output comes back to this process and is written by
the unit's own ``write`` (atomically, under its key), so:

- the outputs are the same table, byte for byte, wherever they ran (each unit is seeded from its
  key, never from where or in which order it ran);
- a lost worker or node costs only its units in flight (Ray restarts the actor and retries them);
  lost beyond Ray's restarts (``ray.max_restarts``), or an engine that fails on a unit, the stage
  keeps every unit written and exits non-zero (:class:`~humpback.core.incomplete.Incomplete`), so DVC
  records nothing and the next ``dvc repro`` computes only the missing ones;
- a killed stage keeps every unit already written, and a rerun computes only the missing ones;
- no shared file system is needed for data: a read step pinned to this process's node reads each
  unit's rows just before a replica takes it (Ray Data's backpressure bounds the read-ahead, so the
  backlog is never in this process or the object store at once), the rows travel to the replicas
  and the outputs back through Ray's object store. The model folders are read by path, so every node must see them at
  the same path (a shared file system, or the same checkout on every node), and run the same
  environment (humpback installed).

Why actors over Ray Data's own LLM processor (``ray.data.llm``): the shard contract needs a seed per
request derived from the shard key, the choice-token probabilities of the logits scorer and the
judge, and prompts encoded exactly as the local engines encode them; ``map_batches`` runs our one
engine factory unchanged, for hf and vLLM alike, so a shard is the same wherever it was made.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from humpback.core.config import RayConfig
from humpback.core.incomplete import Incomplete
from humpback.core.logs import exception_gist, tracebacks_as_one_line

log = logging.getLogger(__name__)


class Job(ABC):
    """One stage's work on one unit of rows. Holds settings only (it is pickled to Ray workers),
    among them ``spec``, the :class:`~humpback.models.engine.EngineSpec` it runs."""

    @abstractmethod
    def setup(self) -> None:
        """Build the engine (load the model); runs once per process, before its first unit."""

    @abstractmethod
    def run(self, rows: pa.Table, key: str, progress: Callable[[int], None]) -> pa.Table:
        """The output of one unit; depends only on ``rows``, ``key`` and the job's settings."""

    def resources(self) -> tuple[int, str]:
        """(GPUs one replica needs where the cluster has GPUs, engine name) for sizing the pool."""
        engine = self.spec.engine
        return (self.spec.vllm.tensor_parallel_size if engine == "vllm" else 1), engine


@dataclass(frozen=True)
class Unit:
    name: str  # what the output is called, for logs
    key: str  # the unit's key: the job seeds the unit from it
    rows: int  # input rows, for progress
    read: Callable[[], pa.Table]  # the input rows (called where the stage runs)
    write: Callable[[pa.Table], None]  # stores the output (called where the stage runs)


def ray_address(cfg: RayConfig) -> str | None:
    """The Ray cluster to run on: ``ray.address``, else ``$RAY_ADDRESS``, else None (run here)."""
    return cfg.address or os.environ.get("RAY_ADDRESS") or None


def run_units(job: Job, units: Sequence[Unit], cfg: RayConfig,
              progress: Callable[[int], None] = lambda n: None) -> str:
    """Run every unit, here or on Ray; returns where they ran (for the log and MLflow)."""
    if not units:
        return "nothing to run"
    address = ray_address(cfg)
    if address is None:
        job.setup()
        for done, unit in enumerate(units):
            try:
                output = job.run(unit.read(), unit.key, progress)
            except _CODE_ERRORS:
                raise
            except Exception as exc:  # the engine failed on this unit: keep what is written, say what is not
                log.debug("unit %s failed", unit.name, exc_info=True)
                raise Incomplete(f"{len(units) - done} of {len(units)} units not written: the engine failed on "
                                 f"{unit.name} ({exception_gist(exc)}); the {done} written are kept: run the stage again "
                                 "(`dvc repro`) to compute only the missing ones") from exc
            unit.write(output)
        return "in process"
    return _run_on_ray(job, units, cfg, address, progress)


# Errors that mean a bug in the code, not an engine or worker that failed this time: tracebacks.
_CODE_ERRORS = (TypeError, AttributeError, NameError, KeyError, IndexError, AssertionError, ImportError,
                NotImplementedError)


# ------------------------------------------------------------------------------------------ Ray
def _to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_bytes(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(blob).read_all()  # the schema's metadata (shard stats) comes along


def _read_units(batch: pa.Table, reads: Sequence[Callable[[], pa.Table]]) -> pa.Table:
    """The read step: each unit's input rows, read where its read function runs."""
    indices = batch["index"].to_pylist()
    return pa.table({"index": indices, "key": batch["key"],
                     "rows": pa.array([_to_bytes(reads[i]()) for i in indices], pa.large_binary())})


def _on_this_node() -> dict:
    """Ray remote args that pin a task to the node of this process (whose files the units read)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)}


class _Replica:
    """A Ray Data actor: one model replica, set up once, then one unit per call."""

    def __init__(self, job: Job):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        job.setup()
        self.job = job

    def __call__(self, batch: pa.Table) -> pa.Table:
        outputs = [_to_bytes(self.job.run(_from_bytes(blob), key, lambda n: None))
                   for key, blob in zip(batch["key"].to_pylist(), batch["rows"].to_pylist())]
        return pa.table({"index": batch["index"], "output": pa.array(outputs, pa.large_binary())})


def connect(address: str) -> dict:
    """Join (or, for "local", start) the Ray cluster at ``address``; its resources. A clear error where
    Ray Data is not installed. The model stages' pools and the corpus stage's datatrove tasks use it."""
    try:
        import ray
        import ray.data  # noqa: F401  (its own dependencies: pandas, pyarrow)
    except ImportError as exc:
        raise RuntimeError(f"a Ray address is set ({address}) but Ray Data is not installed ({exc}): "
                           "`pip install 'humpback[ray]'`, or unset ray.address / RAY_ADDRESS to run "
                           "in the stage's own process") from None
    # Ray Data's usage probes query a Prometheus that clusters rarely run and log each failure with
    # its traceback at DEBUG, which Ray Data's logging setup lets through: nothing a user can act on.
    logging.getLogger("ray.data._internal.usage").setLevel(logging.INFO)
    if not ray.is_initialized():
        # "local" starts a new Ray on this machine (one replica per GPU of one node); anything else is
        # a running cluster ("auto", "ray://head:10001", an IP:port).
        ray.init(address=address, include_dashboard=False)
    return ray.cluster_resources()


def pool_size(cfg: RayConfig, resources: dict, gpus_per_replica: float, cpus_per_replica: float, units: int) -> int:
    """Replicas: ``ray.workers``, else as many as the cluster's GPUs (or CPUs) hold; never more
    than there are units."""
    if cfg.workers is not None:
        n = cfg.workers
    elif gpus_per_replica:
        n = int(resources.get("GPU", 0) // gpus_per_replica)
        if n == 0:
            raise RuntimeError(f"the Ray cluster has {resources.get('GPU', 0):g} GPUs and one replica needs "
                               f"{gpus_per_replica:g} (ray.gpus_per_worker / vllm.tensor_parallel_size)")
    else:
        n = int(resources.get("CPU", 1) // cpus_per_replica) or 1
    return max(1, min(n, units))


def _run_on_ray(job: Job, units: Sequence[Unit], cfg: RayConfig, address: str,
                progress: Callable[[int], None]) -> str:
    resources = connect(address)
    import ray.data

    gpus_needed, engine = job.resources()
    gpus = cfg.gpus_per_worker if cfg.gpus_per_worker is not None else (gpus_needed if resources.get("GPU") else 0)
    replicas = pool_size(cfg, resources, gpus, cfg.cpus_per_worker, len(units))
    where = f"Ray ({address}): {replicas} {engine} replicas, {gpus:g} GPUs and {cfg.cpus_per_worker:g} CPUs each"
    log.info("running %d units on %s", len(units), where)
    # The backlog streams: the dataset holds each unit's index and key only, and a read step on this
    # process's node (where the stage's inputs lie, shared storage or not) reads a unit's rows just
    # before a replica takes it; at most two reads per replica run at once (no CPU asked: a read
    # never waits for one the replicas hold), and Ray Data's backpressure bounds what is read ahead,
    # so neither this process nor the object store holds the backlog.
    ds = ray.data.from_items([{"index": i, "key": u.key} for i, u in enumerate(units)])
    ds = ds.map_batches(_read_units, fn_args=([u.read for u in units],), batch_size=1, batch_format="pyarrow",
                        num_cpus=0, concurrency=2 * replicas, **_on_this_node())
    remote_args = {} if cfg.max_restarts is None else {"max_restarts": cfg.max_restarts}
    ds = ds.map_batches(_Replica, fn_constructor_args=(job,), batch_size=1, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=replicas), num_gpus=gpus or None,
                        num_cpus=cfg.cpus_per_worker, **remote_args)
    written = 0
    try:
        with tracebacks_as_one_line("ray", "ray.data"):  # the line below says what was lost
            for row in ds.iter_rows():  # as units finish, in any order: each is written as soon as it is back
                unit = units[row["index"]]
                unit.write(_from_bytes(row["output"]))
                written += 1
                progress(unit.rows)
    except _CODE_ERRORS:
        raise
    except Exception as exc:  # a worker lost beyond Ray's retries, a failed node, an engine error
        log.debug("the Ray dataset failed", exc_info=True)
        raise Incomplete(f"{len(units) - written} of {len(units)} units not written: Ray failed ({exception_gist(exc)}); "
                         f"the {written} written are kept: run the stage again (`dvc repro`) to compute only the "
                         "missing ones") from exc
    return where

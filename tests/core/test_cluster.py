"""humpback.core.cluster: the missing shards of augment, score@i and answer@m on a Ray cluster.

A real Ray head (2 CPUs) is started for the module, as `ray start --head` starts one on a cluster's
first machine; the stages connect to it by address. The cluster path must write the same files,
byte for byte, as the stage's own process, and a worker killed mid-run must cost nothing.
"""

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _texts import TEXTS
from conftest import free_port
from humpback.augment.config import AugmentConfig
from humpback.augment.generate import augment
from humpback.core.cluster import pool_size, ray_address, run_units
from humpback.core.config import RayConfig
from humpback.core.keys import path_md5
from humpback.core.shards import SEGMENT_SCHEMA, ShardWriter, shard_files
from humpback.curate.config import CurateConfig
from humpback.curate.score import score_candidates
from humpback.data.dedup import content_id
from humpback.evaluate.answer import answer
from humpback.evaluate.config import EvaluateConfig
from humpback.models.config import GenerationConfig, VLLMConfig
from humpback.models.engine import EngineSpec
from humpback.prompts import read_template
from humpback.prompts.config import PromptsConfig

# One worker runs this file: its tests share one Ray head.
pytestmark = pytest.mark.xdist_group("cluster")


BIN = Path(sys.executable).parent
AUGMENT = AugmentConfig(generation={"max_new_tokens": 16, "batch_size": 4, "precision": "fp32"})


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on this machine; yields its address and stops it (and only it) afterwards. Token
    authentication as Ray's docs set it up: the same mode and token on the head and every driver
    (a `ray start` head has it on by default, a driver connecting by address does not)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "token")
        env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        env.setenv("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")  # a test head has nothing to drain
        yield from _head(tmp_path_factory.mktemp("ray") / "head.log")


def _head(log: Path):
    port = free_port()
    with open(log, "w") as out:
        head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0",
                                 "--port", str(port), "--include-dashboard", "false", "--disable-usage-stats"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while "ray status" not in log.read_text():
        assert head.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.5)
    yield address
    import ray

    ray.shutdown()
    head.send_signal(signal.SIGTERM)  # `ray start --block` drains and stops the processes it started
    head.wait(timeout=60)


def _corpus(path: Path, n: int, per_shard: int = 2) -> Path:
    texts = [f"{t} (part {i})" for i in range(n // len(TEXTS) + 1) for t in TEXTS.values()][:n]
    with ShardWriter(path, SEGMENT_SCHEMA, shard_size=per_shard) as w:
        for i, text in enumerate(texts):
            w.add({"id": content_id(text), "text": text, "source": "files", "url": f"doc{i}", "header": f"H{i}",
                   "n_chars": len(text)})
    return path


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def _augment(corpus, out, model, ray=RayConfig(), digest="digest"):
    spec = EngineSpec(model, AUGMENT.generation)
    return augment(corpus, out, spec, AUGMENT, read_template("backward"), digest, progress=False, ray=ray)


def test_pool_size_and_address(monkeypatch):
    cfg = RayConfig()
    assert pool_size(cfg, {"CPU": 8.0}, 0, 1, units=100) == 8
    assert pool_size(cfg, {"CPU": 8.0}, 0, 2, units=3) == 3  # never more replicas than units
    assert pool_size(cfg, {"CPU": 64.0, "GPU": 8.0}, 2, 1, units=100) == 4  # a 2-GPU vLLM replica
    assert pool_size(RayConfig(workers=5), {"CPU": 2.0}, 0, 1, units=100) == 5
    with pytest.raises(RuntimeError, match="has 1 GPUs and one replica needs 2"):
        pool_size(cfg, {"CPU": 8.0, "GPU": 1.0}, 2, 1, units=4)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(cfg) is None
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert ray_address(cfg) == "ray://head:10001"
    assert ray_address(RayConfig(address="local")) == "local"


def test_a_ray_address_without_ray_says_how_to_install_it(monkeypatch, tmp_path, tiny_model_dir):
    from humpback.core.cluster import Unit
    from humpback.evaluate.answer import AnswerJob

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    job = AnswerJob(EngineSpec(tiny_model_dir), EvaluateConfig(), PromptsConfig())
    unit = Unit("u", "", 1, lambda: pa.table({"instruction": ["x"]}), lambda t: None)
    with pytest.raises(RuntimeError, match=r"humpback\[ray\].*unset ray.address / RAY_ADDRESS"):
        run_units(job, [unit], RayConfig(address="auto"))


def _kill_a_worker_once_a_shard_is_back(out: Path, killed: list) -> threading.Thread:
    """A thread that SIGKILLs one Ray Data worker of the job starting now as soon as ``out`` holds a
    finished shard. Only workers started after the thread: an earlier test's job on the same head can
    leave its actors alive a while, and killing one of those took nothing from this job (CI: the stage
    exited 0 where the test expected 75)."""
    since = time.time()

    def kill():
        deadline = time.time() + 300
        while not list(out.glob("part-*.parquet")) and time.time() < deadline:
            time.sleep(0.05)
        while time.time() < deadline:  # until one is found: a loaded machine may lag the shard's arrival
            for p in psutil.process_iter(["cmdline", "create_time"]):
                if "MapWorker" in " ".join(p.info["cmdline"] or []) and (p.info["create_time"] or 0) >= since:
                    p.kill()
                    killed.append(p.pid)
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_augment_on_ray_writes_the_same_shards_and_survives_a_killed_worker(ray_head, tmp_path, tiny_model_dir):
    corpus = _corpus(tmp_path / "corpus", 16)  # 8 shards
    serial = _augment(corpus, tmp_path / "serial", tiny_model_dir)
    assert serial.ran_on == "in process"
    out, killed = tmp_path / "ray", []
    killer = _kill_a_worker_once_a_shard_is_back(out, killed)
    report = _augment(corpus, out, tiny_model_dir, RayConfig(address=ray_head))
    killer.join(timeout=10)
    assert killed, "no Ray worker was found to kill"
    assert report.ran_on.startswith(f"Ray ({ray_head}): 2 hf replicas")
    assert report.shards_generated == 8 and report.candidates == serial.candidates
    assert _files(out) == _files(tmp_path / "serial")  # byte for byte, the killed worker's shard too
    again = _augment(corpus, out, tiny_model_dir, RayConfig(address=ray_head))
    assert again.shards_reused == 8 and again.ran_on == "nothing to run"


def _read_recording_pid(path, pids):
    def read():
        (pids / f"{os.getpid()}-{path.stem}").touch()
        return pa.table({"id": [path.stem] * 3, "text": ["x" * 1000] * 3})

    return read


def test_on_ray_the_units_rows_are_read_in_a_worker_not_held_by_the_stage(ray_head, tmp_path):
    """The backlog streams: the stage's process hands Ray each unit's read function, and a read step
    (on this node) reads the rows just before a replica takes them (benchmarks/ray_backlog.py
    measures the stage's memory flat from a 64 MiB to a 1 GiB backlog)."""
    from humpback.core.cluster import Unit

    class Ids:  # no model: each unit's ids back (defined here: Ray pickles it by value)
        def setup(self):
            pass

        def run(self, rows, key, progress):
            return rows.select(["id"])

        def resources(self):
            return 1, "none"

    pids, written = tmp_path / "pids", {}
    pids.mkdir()
    units = [Unit(f"u{i}", f"k{i}", 3, _read_recording_pid(tmp_path / f"u{i}.parquet", pids),
                  lambda t, i=i: written.__setitem__(i, t["id"].to_pylist())) for i in range(6)]
    where = run_units(Ids(), units, RayConfig(address=ray_head, workers=2))
    assert where.startswith(f"Ray ({ray_head}): 2 none replicas")
    assert written == {i: [f"u{i}"] * 3 for i in range(6)}
    readers = {p.name.split("-")[0] for p in pids.iterdir()}
    assert len(list(pids.iterdir())) == 6 and str(os.getpid()) not in readers


def test_score_and_its_curator_check_on_ray_equal_the_serial_run(ray_head, tmp_path, tiny_model_dir):
    cands = tmp_path / "cands"
    _augment(_corpus(tmp_path / "corpus", 6), cands, tiny_model_dir)
    cfg = CurateConfig(scorer="logits", batch_size=4, negatives=4)
    spec = EngineSpec(tiny_model_dir, GenerationConfig(precision="fp32"))

    def score(out, ray=RayConfig()):
        return score_candidates(cands, out, 1, spec, cfg, read_template("rate"), "cur", progress=False, ray=ray)

    here, there = score(tmp_path / "serial"), score(tmp_path / "ray", RayConfig(address=ray_head))
    assert there.ran_on.startswith("Ray") and here.ran_on == "in process"
    assert there.check == here.check and there.check["negatives"] == 8
    assert _files(tmp_path / "ray") == _files(tmp_path / "serial")  # shards and _curator_check-*.parquet
    assert any(name.startswith("_curator_check-") for name in _files(tmp_path / "ray"))


def test_answer_on_ray_equals_the_serial_answers(ray_head, tmp_path, tiny_model_dir):
    rows = [{"instruction": f"Say something about topic {i}.", "dataset": "t"} for i in range(5)]
    cfg = EvaluateConfig(generation={"max_new_tokens": 8, "precision": "fp32", "batch_size": 2})
    spec = EngineSpec(tiny_model_dir, cfg.generation)
    here = answer(rows, spec, cfg, PromptsConfig(), "m0", progress=False)
    there = answer(rows, spec, cfg, PromptsConfig(), "m0", progress=False, ray=RayConfig(address=ray_head))
    assert there == here and len(here) == 5


def test_vllm_replicas_on_ray_write_the_shards_of_the_serial_vllm_engine(ray_head, tmp_path, vllm_model_dir):
    corpus = _corpus(tmp_path / "corpus", 6)
    cfg = AUGMENT.model_copy(update={"generation": AUGMENT.generation.model_copy(update={"engine": "vllm"})})
    spec = EngineSpec(vllm_model_dir, cfg.generation, VLLMConfig(kv_cache_gib=0.25))

    def run(out, ray=RayConfig()):
        return augment(corpus, out, spec, cfg, read_template("backward"), "d", progress=False, ray=ray)

    run(tmp_path / "serial")
    there = run(tmp_path / "ray", RayConfig(address=ray_head))
    assert there.ran_on.startswith(f"Ray ({ray_head}): 2 vllm replicas") and there.shards_generated == 3
    assert len({t for t in pq.read_table(shard_files(tmp_path / "serial")[0])["instruction"].to_pylist()}) > 1
    assert _files(tmp_path / "ray") == _files(tmp_path / "serial")


def test_the_augment_stage_on_the_cluster_named_by_RAY_ADDRESS_loses_a_worker_and_the_rerun_finishes(
        ray_head, tmp_path, tiny_model_dir):
    """A worker lost beyond Ray's restarts (ray.max_restarts 0): the stage keeps the shards that came
    back, says in one line how many are missing and exits 75 (DVC records nothing); run again, it
    computes only the missing ones, on the cluster, and the shards equal the serial run's."""
    corpus = _corpus(tmp_path / "corpus", 24)  # 12 shards: work left when the first comes back
    serial = tmp_path / "serial"
    _augment(corpus, serial, tiny_model_dir, digest=path_md5(tiny_model_dir))  # as the stage keys it
    env = {**os.environ, "RAY_ADDRESS": ray_head, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    root = Path(__file__).parents[2]

    def stage(ray: dict):
        params = tmp_path / "params.yaml"
        params.write_text(json.dumps({"augment": AUGMENT.model_dump(), "ray": ray}))  # YAML reads JSON
        return subprocess.run([sys.executable, str(root / "pipeline/augment.py"), "--params", str(params), "--model",
                               str(tiny_model_dir), "--corpus", str(corpus), "--out", str(tmp_path / "ray"),
                               "--metrics", str(tmp_path / "augment.json"), "--no-progress"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    killed = []
    killer = _kill_a_worker_once_a_shard_is_back(tmp_path / "ray", killed)
    lost = stage({"max_restarts": 0})
    killer.join(timeout=10)
    assert killed, "no Ray worker was found to kill"
    assert lost.returncode == 75, lost.stderr[-3000:]
    assert "Traceback" not in lost.stderr, lost.stderr[-3000:]
    (line,) = [x for x in lost.stderr.splitlines() if x.startswith("incomplete:")]
    assert re.search(r"incomplete: \d+ of 12 units not written: Ray failed \(.+\); the \d+ written are kept", line), line
    kept = _files(tmp_path / "ray")
    assert 1 <= len(kept) < 12 and all(kept[name] == _files(serial)[name] for name in kept)
    assert not (tmp_path / "augment.json").exists()  # no metrics for unfinished work
    done = stage({})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"(Ray ({ray_head}): " in done.stderr and f"{len(kept)} reused" in done.stderr
    assert _files(tmp_path / "ray") == _files(serial)
    import mlflow

    # a client of its own: mlflow.set_tracking_uri would also set MLFLOW_TRACKING_URI for every later
    # test's subprocesses (and send their runs here)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("humpback")
    run = client.search_runs([exp.experiment_id], filter_string="tags.`humpback.role` = 'augment'")[0]
    assert run.data.tags["humpback.ran_on"].startswith(f"Ray ({ray_head})")
    assert run.data.params["augment.generation.max_new_tokens"] == "16" and "vllm.tensor_parallel_size" not in run.data.params
    assert pq.read_table(shard_files(tmp_path / "ray")[0]).num_rows == 2


def test_the_corpus_steps_on_ray_write_the_bytes_of_the_local_run(ray_head, tmp_path):
    """datatrove's Ray executor runs the corpus stage's tasks on the cluster the model stages use."""
    from humpback.data.config import CorpusConfig, CorpusRunConfig, FilesSource, RawConfig
    from humpback.data.corpus import build_corpus
    from humpback.data.raw import build_raw

    pages = tmp_path / "pages"
    pages.mkdir()
    for i, topic in enumerate(["tea", "bikes", "tea", "gardening", "sourdough", "bikes"]):
        (pages / f"p{i}.md").write_text(f"# Page {i}\n\n## {topic.title()}\n\n{TEXTS[topic]}\n")
    build_raw(RawConfig(path=str(pages), sources=[FilesSource(type="files", path=str(pages))]), tmp_path / "raw",
              progress=False)
    cfg = CorpusConfig(tasks=2, max_segments=None, max_segments_per_document=None, min_chars=300,
                       dedup={"exact": False, "buckets": 2, "hashes_per_bucket": 4})  # 3 steps, not 5: CI time
    there = build_corpus(cfg, tmp_path / "raw", tmp_path / "ray", progress=False, ray=RayConfig(address=ray_head),
                         run=CorpusRunConfig(executor="ray", workers=2, work_dir=str(tmp_path / "w1")))
    here = build_corpus(cfg, tmp_path / "raw", tmp_path / "local", progress=False,
                        run=CorpusRunConfig(work_dir=str(tmp_path / "w2")))
    assert there.metrics() == here.metrics() and there.metrics()["segments"]["dropped"]["near_duplicate"] > 0
    assert [p.read_bytes() for p in shard_files(tmp_path / "ray")] == [p.read_bytes() for p in shard_files(tmp_path / "local")]

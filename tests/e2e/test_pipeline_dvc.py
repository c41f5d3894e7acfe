"""The real `dvc repro` of the pipeline in a temporary copy of the repo, on the smoke profile."""

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import BIN, run_ok

ALL_STAGES = ("base_model", "seed", "raw", "corpus", "train_backward", "augment", "train_m0",
              "score@1", "select@1", "rewrite@1", "train@1", "score@2", "select@2", "rewrite@2", "train@2",
              "eval_set", "answer@m0", "answer@m1", "answer@m2", "evaluate@m0", "evaluate@m1", "evaluate@m2",
              "scaling", "report")
SCALING_SIZES = (2, 4)  # test_scaling_* turns them on (the smoke profile has none)
SCALING_STAGES = tuple(f"scale_{kind}@{n}" for kind in ("train", "answer", "evaluate") for n in SCALING_SIZES)
TRAIN_MODELS = ("backward", "m0", "m1", "m2")
TRAIN_RUNS = {f"train {m}" for m in TRAIN_MODELS}


_run = run_ok


@pytest.fixture
def repo(smoke_repo):
    """This test's own copy of the session's smoke build (git + DVC + MLflow, after `dvc repro`)."""
    return smoke_repo


def test_repro_builds_every_stage(repo):
    dest, _, log = repo
    for stage in ALL_STAGES:
        assert f"Running stage '{stage}'" in log
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(dest / "models/base")
    assert model.config.num_hidden_layers == 2  # the smoke profile's tiny model

    seed = json.loads((dest / "metrics/seed.json").read_text())
    assert seed["pairs"]["heldout"] == 8 and seed["pairs"]["train"] == seed["pairs"]["total"] - 8
    assert seed["train"]["response_tokens"]["mean"] > 0
    assert pq.read_table(dest / "data/seed/train.parquet").num_rows == seed["pairs"]["train"]

    corpus = json.loads((dest / "metrics/corpus.json").read_text())
    segs = corpus["segments"]
    assert segs["kept"] == 24  # the smoke cap
    assert segs["kept"] + sum(segs["dropped"].values()) == segs["input"]
    shards = sorted((dest / "data/corpus").glob("part-*.parquet"))
    assert len(shards) == 3 and sum(pq.read_metadata(s).num_rows for s in shards) == 24
    manifest = json.loads((dest / "data/corpus/manifest.json").read_text())
    assert all("==" in d["name"] and d["license"] for d in manifest["documents"])
    raw = json.loads((dest / "metrics/raw.json").read_text())
    assert raw["documents"]["kept"] == 120 and raw["documents"]["by_source"] == {"python_packages": 120}
    assert corpus["documents"]["read"] <= raw["documents"]["kept"]

    cands = sorted((dest / "data/candidates").glob("*.parquet"))
    assert [c.name[: len("part-00000")] for c in cands] == [s.name[: len("part-00000")] for s in shards]
    augment = json.loads((dest / "metrics/augment.json").read_text())
    assert augment["segments"] == 24 and augment["candidates"] + sum(augment["dropped"].values()) == 24
    for name in ("backward", "m0"):
        assert AutoModelForCausalLM.from_pretrained(dest / "models" / name).config.num_hidden_layers == 2
        assert json.loads((dest / f"metrics/train/{name}.json").read_text())["steps"] == 2
    assert not any((dest / ".humpback/train").iterdir()), "checkpoints outlived their saved models"
    from huggingface_hub import ModelCard

    for name in TRAIN_MODELS:  # every trained model folder is complete for an upload: it has its card
        card = ModelCard.load(dest / "models" / name / "README.md")
        assert card.data.model_name == name and "humpback" in card.data.tags
        assert "data/seed" in card.text and "Held-out likelihood" in card.text

    for i in (1, 2):
        scores = json.loads((dest / f"metrics/score/iter{i}.json").read_text())
        curated = json.loads((dest / f"metrics/curate/iter{i}.json").read_text())
        assert scores["pairs"] == augment["candidates"] == curated["pairs"]
        assert sum(curated["scores"].values()) + curated["unparseable"] == curated["pairs"]
        assert pq.read_table(dest / f"data/curated/iter{i}/curated.parquet").num_rows == curated["kept"]
        assert json.loads((dest / f"metrics/train/m{i}.json").read_text())["curated_pairs"] == curated["kept"]
        assert (dest / f"metrics/curate/iter{i}_scores.csv").read_text().startswith("score,count")

    lock = yaml.safe_load((dest / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(ALL_STAGES)
    # generated rows are keyed by the md5 DVC recorded for the model that made them (not a hash of our own)
    outs = {o["path"]: o["md5"].removesuffix(".dir") for st in lock["stages"].values() for o in st.get("outs", [])}
    assert {pq.read_table(c)["backward_model"][0].as_py() for c in cands} == {outs["models/backward"]}
    for i, curator in ((1, "models/m0"), (2, "models/m1")):
        scored = sorted((dest / f"data/scores/iter{i}").glob("part-*.parquet"))
        assert {pq.read_table(s)["curator"][0].as_py() for s in scored} == {outs[curator]}
    # iteration 2 is curated by M1, which trained on iteration 1's selection
    assert any(d["path"] == "models/m1" for d in lock["stages"]["score@2"]["deps"])
    assert any(d["path"] == "data/curated/iter1" for d in lock["stages"]["train@1"]["deps"])


def test_mlflow_has_one_run_per_trained_model_with_lineage(smoke_build):
    import mlflow

    dest, _, _ = smoke_build  # read only: its MLflow artifacts live in this folder
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{dest / 'mlflow.db'}")
    exp = client.get_experiment_by_name("humpback")
    assert exp.artifact_location.startswith((dest / "mlartifacts").as_uri())
    all_runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(all_runs) == TRAIN_RUNS | {"dvc repro", "augment", "score iter1", "score iter2", "select iter1",
                                          "select iter2", "evaluate m0 vs m0", "evaluate m1 vs m0",
                                          "evaluate m2 vs m0", "report"}
    # one parent run for the `dvc repro`, every stage a child of it
    parent = all_runs["dvc repro"]
    assert parent.data.tags["humpback.role"] == "pipeline" and parent.data.params["curate.threshold"] == "3"
    assert all(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
               for name, r in all_runs.items() if name != "dvc repro")
    assert parent.data.metrics["iter1.kept"] == json.loads((dest / "metrics/curate/iter1.json").read_text())["kept"]
    assert parent.data.metrics["m1.win_rate"] == json.loads((dest / "metrics/eval/m1.json").read_text())["win_rate"]
    runs = {name: r for name, r in all_runs.items() if name in TRAIN_RUNS}
    lock = yaml.safe_load((dest / "dvc.lock").read_text())
    base_md5 = next(o["md5"] for o in lock["stages"]["base_model"]["outs"] if o["path"] == "models/base")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, capture_output=True, text=True).stdout.strip()
    stage_of = {"train backward": "train_backward", "train m0": "train_m0", "train m1": "train@1", "train m2": "train@2"}
    for name, run in runs.items():
        role = "backward" if "backward" in name else "forward"
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert tags["humpback.role"] == role and tags["dvc.stage"] == stage_of[name]
        assert tags["dvc.input.models/base"] == base_md5 and tags["git.commit"] == head
        params = yaml.safe_load((dest / "params.yaml").read_text())
        recipe = params["train"] | (params["train_backward"] if role == "backward" else {})  # M_yx: its own keys
        assert run.data.params["learning_rate"] == str(float(recipe["learning_rate"]))
        assert run.data.params["train.learning_rate"] == str(params["train"]["learning_rate"])  # the section as written
        assert run.data.params["weight_decay"] == "0.1"
        assert run.data.metrics["humpback.seed_pairs"] > 0 and run.data.metrics["humpback.completion_tokens"] > 0
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 2  # two logged steps in the smoke profile
    # the DVC md5 of a stage's outputs, filled in from dvc.lock by a later stage of the same execution
    m0_md5 = next(o["md5"] for o in lock["stages"]["train_m0"]["outs"] if o["path"] == "models/m0")
    assert client.get_run(runs["train m0"].info.run_id).data.tags["dvc.output.models/m0"] == m0_md5
    # the training data as MLflow dataset inputs, with DVC's hash and their size
    seed_md5 = next(o["md5"] for o in lock["stages"]["seed"]["outs"] if o["path"] == "data/seed")
    inputs = {d.dataset.name: d.dataset for d in client.get_run(runs["train m1"].info.run_id).inputs.dataset_inputs}
    assert set(inputs) == {"seed", "curated/iter1"} and inputs["seed"].digest == seed_md5[:36]
    assert json.loads(inputs["seed"].profile)["num_rows"] == json.loads((dest / "metrics/seed.json").read_text())["pairs"]["train"]
    select1 = all_runs["select iter1"]
    assert select1.data.metrics["kept"] == parent.data.metrics["iter1.kept"]
    if select1.data.metrics["kept"]:
        assert "curated_sample_iter1.json" in [a.path for a in client.list_artifacts(select1.info.run_id)]
    m2 = runs["train m2"]
    assert m2.data.tags["humpback.curator"] == "m1" and m2.data.params["curate.threshold"] == "3.0"
    assert m2.data.tags["dvc.input.data/curated/iter2"] == next(
        o["md5"] for o in lock["stages"]["select@2"]["outs"] if o["path"] == "data/curated/iter2")


def test_evaluation_writes_alpaca_eval_files_metrics_and_report(repo):
    dest, env, _ = repo
    prompts = json.loads((dest / "data/eval/set/prompts.json").read_text())
    assert len(prompts) == 6  # the smoke profile's max_prompts
    assert json.loads((dest / "data/eval/answers/dataset.json").read_text()) == []  # the demo set has no references
    for m in ("m0", "m1", "m2"):
        outputs = json.loads((dest / f"data/eval/answers/{m}.json").read_text())
        assert [set(o) for o in outputs] == [{"instruction", "output", "generator", "dataset"}] * 6
        assert {o["generator"] for o in outputs} == {m}
        metrics = json.loads((dest / f"metrics/eval/{m}.json").read_text())
        assert metrics["reference"] == "m0" and metrics["n_total"] == 6 and metrics["failed"] == 0
        assert 0 <= metrics["win_rate"] <= 100 and metrics["length_controlled_winrate"] is not None
        annotations = json.loads((dest / f"data/eval/judged/{m}/annotations.json").read_text())
        assert {a["generator_1"] for a in annotations} == {"m0"} and {a["generator_2"] for a in annotations} == {m}
        assert all(1 <= a["preference"] <= 2 for a in annotations)
    assert json.loads((dest / "metrics/eval/m0.json").read_text())["is_reference"] is True
    judged = json.loads((dest / "metrics/eval/m1.json").read_text())
    assert judged["n_wins"] + judged["n_wins_base"] + judged["n_draws"] == 6

    assert json.loads((dest / "metrics/scaling.json").read_text()) == {"enabled": False}  # no sizes
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{dest / 'mlflow.db'}")
    exp = client.get_experiment_by_name("humpback")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    report = json.loads((dest / "metrics/report.json").read_text())
    assert set(report["win_rate"]) == {"m0", "m1", "m2"} and report["reference"] == "m0"
    assert report["kept"]["iter1"] == json.loads((dest / "metrics/curate/iter1.json").read_text())["kept"]
    # the pairs a person reads, beside the plots: not in plots/, whose every file DVC reads as plot data
    pairs = (dest / "metrics/report/curated_pairs.md").read_text()
    assert f"## Iteration 1: {report['kept']['iter1']} pairs kept" in pairs and "| score | expected |" in pairs
    assert {p.suffix for p in (dest / "plots").iterdir()} <= {".png"}
    # m0 is the reference (nothing to judge); a random tiny judge cannot pass the reliability bar
    assert set(report["judge_reliable"]) <= {"m1", "m2"} and not any(report["judge_reliable"].values())
    assert set(report["judge_unreliable_because"]) == set(report["judge_reliable"])
    # held-out likelihood: every trained model and the base, each in its own direction
    heldout = {m: json.loads((dest / f"metrics/train/{m}.json").read_text())["heldout"] for m in TRAIN_MODELS}
    assert all(h["pairs"] == 8 and h["tokens"] > 0 and h["nll"] > 0 for h in heldout.values())
    assert "nll_base" not in heldout["m1"] and "nll_base" not in heldout["m2"]  # M0 scored the base
    assert report["heldout_nll"]["backward"] == {"base": heldout["backward"]["nll_base"], "backward": heldout["backward"]["nll"]}
    assert report["heldout_nll"]["forward"] == {"base": heldout["m0"]["nll_base"],
                                                **{m: heldout[m]["nll"] for m in ("m0", "m1", "m2")}}
    assert runs["train m1"].data.metrics["humpback.heldout.nll"] == heldout["m1"]["nll"]
    assert runs["report"].data.metrics["heldout_nll.forward.m2"] == heldout["m2"]["nll"]
    # the curator check of every score@i: in its metrics, the report, the score run and the parent run
    for i in (1, 2):
        check = json.loads((dest / f"metrics/score/iter{i}.json").read_text())["curator_check"]
        assert check["negatives"] == 2 * check["candidates_sampled"] > 0 and 0 <= check["auc"] <= 1
        assert report["curator_auc"][f"iter{i}"] == check["auc"]
        assert runs[f"score iter{i}"].data.metrics["curator_check.auc"] == pytest.approx(check["auc"])
        assert len(list((dest / f"data/scores/iter{i}").glob("_curator_check-*.parquet"))) == 1
    assert runs["report"].data.metrics["curator_auc.iter2"] == pytest.approx(report["curator_auc"]["iter2"])
    # the well-formed share of candidates and of each curated set: metrics, report, MLflow
    augment = json.loads((dest / "metrics/augment.json").read_text())
    assert report["well_formed"]["candidates"] == augment["well_formed"]
    for i in (1, 2):
        curated = json.loads((dest / f"metrics/curate/iter{i}.json").read_text())
        assert report["well_formed"][f"iter{i}"] == curated["well_formed"]
    assert runs["dvc repro"].data.metrics["m2.heldout_nll"] == pytest.approx(heldout["m2"]["nll"])
    assert runs["dvc repro"].data.metrics["iter1.curator_auc"] == pytest.approx(report["curator_auc"]["iter1"])
    for png in ("win_rate", "heldout_nll", "scores", "kept_by_threshold"):
        assert (dest / f"plots/{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = _run([str(BIN / "dvc"), "metrics", "show"], dest, env)
    assert "metrics/eval/m1.json" in shown and "win_rate" in shown
    ev = runs["evaluate m1 vs m0"]
    assert ev.data.metrics["eval.win_rate"] == pytest.approx(judged["win_rate"])
    assert ev.data.params["evaluate.judge.kind"] == "hf" and ev.data.tags["dvc.stage"] == "evaluate@m1"
    assert "annotations.json" in [a.path for a in client.list_artifacts(ev.info.run_id)]
    # the win rate also lands on the run that trained M1
    assert runs["train m1"].data.metrics["eval.win_rate"] == pytest.approx(judged["win_rate"])
    assert {a.path for a in client.list_artifacts(runs["report"].info.run_id, "plots")} >= {"plots/win_rate.png"}


def test_scaling_is_three_ordinary_stages_per_size_and_a_fit(repo):
    """`scaling.sizes` adds scale_train@N, scale_answer@N and scale_evaluate@N (the train, answer and
    evaluate scripts) and the `scaling` fit reads their metrics; nothing else reruns, and a new size
    would rerun only its own three stages and the fit. In a copy of the smoke repo."""
    import mlflow

    dest, env, _ = repo
    work = dest  # the test's own copy of the smoke build
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["scaling"]["sizes"] = list(SCALING_SIZES)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = _run([str(BIN / "dvc"), "repro"], work, env)
    ran = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}
    assert ran == {*SCALING_STAGES, "scaling", "report"}, log

    scaling = json.loads((work / "metrics/scaling.json").read_text())
    assert [p["n"] for p in scaling["points"]] == list(SCALING_SIZES) and scaling["alpha"] is not None
    # with_seed (smoke): the seed's training split plus N curated pairs, never the held-out pairs
    train_pairs = json.loads((work / "metrics/seed.json").read_text())["pairs"]["train"]
    assert [p["examples"] for p in scaling["points"]] == [train_pairs + n for n in SCALING_SIZES]
    for point in scaling["points"]:  # each point is what its own scale_* stages measured
        judged = json.loads((work / f"metrics/eval/scaling_n{point['n']}.json").read_text())
        assert point["win_rate"] == judged["win_rate"] and judged["model"] == f"scaling_n{point['n']}"
    # two points: alpha is the slope between them on ln N
    assert scaling["alpha"] == pytest.approx((scaling["points"][1]["win_rate"] - scaling["points"][0]["win_rate"])
                                             / math.log(2), abs=1e-3)
    assert (work / "plots/scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name("humpback")
    (parent,) = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1,
                                   filter_string="tags.`humpback.role` = 'pipeline'")
    runs = {r.info.run_name: r for r in client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")}
    assert set(runs) == {"scaling iter2", "report", *(f"{kind} scaling_n{n}{vs}" for n in SCALING_SIZES
                                                       for kind, vs in (("train", ""), ("evaluate", " vs m0")))}
    for point in scaling["points"]:
        trained = runs[f"train scaling_n{point['n']}"].data
        assert trained.metrics["eval.win_rate"] == pytest.approx(point["win_rate"])  # the win rate on its training run
        assert trained.tags["humpback.scaling_size"] == str(point["n"]) and trained.params["scaling.with_seed"] == "True"
        assert trained.tags["dvc.stage"] == f"scale_train@{point['n']}"
    assert runs["scaling iter2"].data.metrics["scaling.alpha"] == pytest.approx(scaling["alpha"])
    assert parent.data.metrics["scaling.alpha"] == pytest.approx(scaling["alpha"])

    params["scaling"]["sizes"] = [*SCALING_SIZES, 8]
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(_run([str(BIN / "dvc"), "status", "--json"], work, env))
    assert set(status) == {"scale_train@8", "scale_answer@8", "scale_evaluate@8", "scaling"}, status


def _out_hashes(dest) -> dict[str, str]:
    lock = yaml.safe_load((dest / "dvc.lock").read_text())["stages"]
    return {f"{name}:{o['path']}": o["md5"] for name, st in lock.items() for o in st.get("outs", [])}


def _metrics_bytes(dest) -> dict[str, bytes]:
    return {str(p.relative_to(dest)): p.read_bytes() for p in sorted((dest / "metrics").rglob("*")) if p.is_file()}


def test_forced_rerun_gives_identical_outputs_and_metrics(repo):
    """`dvc repro -f` recomputes every stage; every output (data, models) and every tracked metrics
    file must come out byte-identical: the lock changes only when the inputs do."""
    dest, env, _ = repo
    before, metrics = _out_hashes(dest), _metrics_bytes(dest)
    log = _run([str(BIN / "dvc"), "repro", "-f"], dest, env)
    assert all(f"Running stage '{s}'" in log for s in ALL_STAGES)
    after = _out_hashes(dest)
    assert {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v} == {}
    changed = [k for k, v in _metrics_bytes(dest).items() if metrics.get(k) != v]
    assert changed == []


def test_a_code_edit_reruns_the_stages_that_import_it_and_nothing_else(repo):
    dest, env, _ = repo
    status = json.loads(_run([str(BIN / "dvc"), "status", "--json"], dest, env))
    assert status == {}
    trainings = {"train_backward", "train_m0", "train@1", "train@2"}
    generation = {"augment", "score@1", "score@2", "answer@m0", "answer@m1", "answer@m2", "rewrite@1", "rewrite@2"}
    judged = {"evaluate@m0", "evaluate@m1", "evaluate@m2"}
    edited = {"src/humpback/models/loading.py": {"base_model"} | trainings | generation | judged,
              "src/humpback/evaluate/winrate.py": judged,  # not the answers, not the report
              "src/humpback/evaluate/judges/remote.py": judged,
              "src/humpback/train/config.py": trainings,
              "src/humpback/rewrite/faithful.py": {"rewrite@1", "rewrite@2"},
              "src/humpback/curate/select.py": {"select@1", "select@2", "score@1", "score@2", "rewrite@1", "rewrite@2"},
              "src/humpback/core/config.py": set(ALL_STAGES),
              "README.md": set()}
    for module, stages in edited.items():
        original = (dest / module).read_text()
        (dest / module).write_text(original + "\n# an edit\n")
        try:
            status = json.loads(_run([str(BIN / "dvc"), "status", "--json"], dest, env))
            assert set(status) == stages, module
        finally:
            (dest / module).write_text(original)
    # a real rerun: the data package changed (the segment filters), so seed, raw and corpus rerun, and
    # rewrite@i (its faithfulness check applies the corpus's repetition rule); their outputs are the
    # same bytes, so DVC stops there (augment and everything after it are untouched)
    filters = dest / "src/humpback/data/filters.py"
    original = filters.read_text()
    filters.write_text(original + "\n# an edit\n")
    try:
        log = _run([str(BIN / "dvc"), "repro"], dest, env)
    finally:
        filters.write_text(original)
    ran = {s for s in ALL_STAGES if f"Running stage '{s}'" in log}
    assert ran == {"seed", "raw", "corpus", "rewrite@1", "rewrite@2"}, log
    _run([str(BIN / "dvc"), "commit", "-f", "seed", "raw", "corpus", "rewrite@1", "rewrite@2"], dest, env)  # the lock back
    assert json.loads(_run([str(BIN / "dvc"), "status", "--json"], dest, env)) == {}


def test_a_team_shares_data_and_models_through_a_remote(repo, tmp_path):
    """Push from one clone to a DVC remote (a local folder), pull into a fresh clone: the second clone
    is up to date without recomputing anything."""
    dest, env, _ = repo
    remote = tmp_path / "remote"
    _run([str(BIN / "dvc"), "remote", "add", "-d", "shared", str(remote)], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "pipeline results"], dest, env)
    _run([str(BIN / "dvc"), "push"], dest, env)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(dest), str(clone)], tmp_path, env)
    assert not (clone / "models/m2").exists()
    _run([str(BIN / "dvc"), "pull"], clone, env)
    assert (clone / "models/m2/model.safetensors").is_file()
    assert json.loads(_run([str(BIN / "dvc"), "status", "--json"], clone, env)) == {}
    log = _run([str(BIN / "dvc"), "repro"], clone, env)
    assert "Running stage" not in log
    assert _out_hashes(clone) == _out_hashes(dest)


# stage -> a file whose appearance means the stage has written part of its work
KILL_MARKERS = {"corpus": "data/corpus/part-*.parquet", "augment": "data/candidates/*.parquet",
                "score@1": "data/scores/iter1/*.parquet", "answer@m1": "data/eval/answers/m1.json",
                "evaluate@m1": "data/eval/judged/m1/judgements.jsonl"}


def _files(dest, paths) -> dict[str, bytes]:
    found = {}
    for rel in paths:
        p = dest / rel
        for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []):
            if f.is_file() and not f.name.startswith("."):
                found[str(f.relative_to(dest))] = f.read_bytes()
    return found


@pytest.mark.parametrize("stage", list(KILL_MARKERS))
def test_a_stage_killed_at_any_point_reruns_to_the_same_bytes(repo, stage):
    """SIGKILL the stage's command from scratch, as soon as it has written part of its work or at a
    seeded random moment (whichever comes first), run it again: its outputs and metrics are
    byte-identical to the uninterrupted run's."""
    import random
    import signal
    import time

    dest, env, _ = repo
    entry = yaml.safe_load((dest / "dvc.lock").read_text())["stages"][stage]
    paths = [o["path"] for o in entry["outs"]] + [m for m in _metrics_of(dest, stage)]
    before = _files(dest, paths)
    for o in entry["outs"]:  # from scratch: nothing of the earlier run to reuse
        target = dest / o["path"]
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    deadline = time.monotonic() + random.Random(stage).uniform(1.0, 8.0)
    proc = subprocess.Popen(entry["cmd"], shell=True, cwd=dest, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and time.monotonic() < deadline and not list(dest.glob(KILL_MARKERS[stage])):
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _run(["bash", "-c", entry["cmd"]], dest, env)
    after = _files(dest, paths)
    assert sorted(after) == sorted(before)
    assert [k for k in before if before[k] != after[k]] == []


def test_the_gpu_check_on_cpu_resumes_a_killed_training_under_dvc_repro(repo, tmp_path):
    """benchmarks/gpu_check.py in its CPU form, against this repository: `dvc repro` finds nothing to
    do, train_m0 is SIGKILLed after its first complete checkpoint, `dvc repro` resumes it from there
    (the log says from which step) and it ends with the same model and metrics, bytes for bytes."""
    dest, env, _ = repo
    out = tmp_path / "gpu-check.json"
    _run([sys.executable, str(dest / "benchmarks/gpu_check.py"), "--repo", str(dest), "--allow-cpu", "--out", str(out)],
         dest, env, timeout=900)
    result = json.loads(out.read_text())
    assert result["ok"] and result["device"] == "cpu" and result["up_to_date_after_resume"]
    assert result["resume"] == {"resumed_from_step": 1, "of_steps": 2, "same_bytes_as_uninterrupted": True,
                                "checkpoints_left": 0}
    from humpback.models.device import bf16_supported

    precision = "bf16" if bf16_supported() else "fp32"  # precision auto: bf16 where the CPU has it natively
    assert result["train_precision"] == {"m0": precision, "m1": precision, "m2": precision}
    assert set(result["judged"]) == {"m0", "m1", "m2"} and set(result["curator_auc"]) == {"iter1", "iter2"}


def _metrics_of(dest, stage) -> list[str]:
    stages = yaml.safe_load((dest / "dvc.yaml").read_text())["stages"]
    name, _, item = stage.partition("@")
    body = stages[name].get("do", stages[name])
    out = []
    for m in body.get("metrics", []):
        path = next(iter(m)) if isinstance(m, dict) else m
        out.append(path.replace("${key}", item).replace("${item}", item))
    return out


def test_repro_again_does_nothing_and_a_param_change_reruns_only_its_stage(repo):
    dest, env, _ = repo
    again = _run([str(BIN / "dvc"), "repro"], dest, env)
    assert "Running stage" not in again

    original = (dest / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["corpus"]["max_segments"] = 12
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = _run([str(BIN / "dvc"), "repro", "augment"], dest, env)
    assert "Running stage 'corpus'" in log and "Running stage 'augment'" in log
    for stage in ("base_model", "seed", "raw", "train_backward"):
        assert f"Running stage '{stage}'" not in log
    assert json.loads((dest / "metrics/corpus.json").read_text())["segments"]["kept"] == 12
    # the first 12 segments are the same, so the first shards' candidates are reused, not regenerated
    assert json.loads((dest / "metrics/augment.json").read_text())["shards"] == 2
    assert "1 shards generated (in process), 1 reused" in log

    params["augment"]["generation"]["max_new_tokens"] = 4
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = _run([str(BIN / "dvc"), "repro", "augment"], dest, env)
    assert "Running stage 'augment'" in log and "Running stage 'corpus'" not in log

    # back to the old params: the old segments and candidates come back byte for byte, so DVC finds
    # every later stage (the models, scores, evaluations) up to date without running it
    (dest / "params.yaml").write_text(original)
    _run([str(BIN / "dvc"), "repro", "augment"], dest, env)
    assert json.loads(_run([str(BIN / "dvc"), "status", "--json"], dest, env)) == {}


def test_bad_params_fail_before_any_work(repo):
    dest, env, _ = repo
    bad = dest / "bad.yaml"
    bad.write_text("corpus:\n  min_chars: -1\n")
    proc = subprocess.run([sys.executable, "pipeline/corpus.py", "--params", str(bad), "--out", str(dest / "x")],
                          cwd=dest, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "'corpus.min_chars': Input should be greater than 0" in proc.stderr
    assert not (dest / "x").exists()


def test_dag_shape(repo):
    dest, env, _ = repo
    listed = _run([str(BIN / "dvc"), "stage", "list", "--name-only"], dest, env).split()
    assert listed == list(ALL_STAGES[:7]) + ["score@1", "score@2", "select@1", "select@2", "rewrite@1", "rewrite@2",
                                             "train@1", "train@2",
                                             "eval_set", "answer@m0", "answer@m1", "answer@m2", "evaluate@m0",
                                             "evaluate@m1", "evaluate@m2", "scaling", "report"]


def test_threshold_sweep_reruns_only_what_depends_on_selection(repo):
    dest, env, _ = repo
    _run([str(BIN / "dvc"), "repro"], dest, env)
    # the smoke profile's random curator scores every pair 3 (threshold 3 keeps all): 4 keeps none,
    # which also exercises the empty selection (M1 then trains on the seed alone)
    log = _run([str(BIN / "dvc"), "exp", "run", "-S", "curate.threshold=4"], dest, env)
    ran = {s for s in ALL_STAGES if f"Running stage '{s}'" in log}
    # scaling: the fit reads metrics/train and metrics/eval (a few seconds, no model: no sizes here)
    needed = {"select@1", "rewrite@1", "train@1", "score@2", "select@2", "rewrite@2", "train@2", "answer@m1",
              "answer@m2", "scaling", "report"}
    # the judge reruns only if the new M1/M2 answer differently (a tiny random model may not)
    assert needed <= ran <= needed | {"evaluate@m1", "evaluate@m2"}, log
    curated = json.loads((dest / "metrics/curate/iter1.json").read_text())
    assert curated["threshold"] == 4 and curated["kept"] == 0
    assert json.loads((dest / "metrics/train/m1.json").read_text())["curated_pairs"] == 0
    shown = json.dumps(json.loads(_run([str(BIN / "dvc"), "exp", "show", "--json"], dest, env)))
    assert "metrics/curate/iter1.json" in shown and '"kept": 0' in shown


def test_queued_threshold_grid_reuses_everything_the_threshold_does_not_touch(repo):
    import mlflow

    dest, env, _ = repo
    # as after `make demo`: dvc.lock is tracked by git, so each queued experiment starts from it
    # (DVC queues tracked files only) and checks the cached outputs out instead of recomputing them
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "results"], dest, env)
    # thresholds no earlier run used (DVC's run cache would restore those without running anything)
    _run([str(BIN / "dvc"), "exp", "run", "--queue", "-S", "curate.threshold=2,5"], dest, env)
    _run([str(BIN / "dvc"), "queue", "start"], dest, env)
    _wait_queue(dest, env)
    shown = json.loads(_run([str(BIN / "dvc"), "exp", "show", "--json"], dest, env))
    exps = {r["name"]: r["data"] for e in shown for x in (e.get("experiments") or []) for r in x["revs"]}
    queued = {name: d for name, d in exps.items() if d["params"]["params.yaml"]["data"]["curate"]["threshold"] in (2, 5)
              and d["metrics"]}
    assert len(queued) >= 2, exps.keys()
    kept = {d["params"]["params.yaml"]["data"]["curate"]["threshold"]: d["metrics"]["metrics/curate/iter1.json"]["data"]["kept"]
            for d in queued.values()}
    assert kept[5] == 0 and kept[2] == json.loads((dest / "metrics/augment.json").read_text())["candidates"]
    for data in queued.values():
        assert "win_rate" in data["metrics"]["metrics/eval/m1.json"]["data"]
    # the plots of the experiments side by side: histograms, kept sizes, win rates, report images
    plots = json.loads(_run([str(BIN / "dvc"), "plots", "diff", *queued, "--json"], dest, env))
    names = set(plots.get("data", plots))
    assert {"metrics/curate/iter1_scores.csv", "metrics/report/win_rate.csv"} <= names, names
    assert any(n.startswith("plots") and n.endswith("win_rate.png") for n in names), names
    # MLflow: one parent run per experiment, named after it, and no child for a stage the threshold
    # does not reach (backward and M0 training, generation, first-iteration scoring)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{dest / 'mlflow.db'}")
    exp = client.get_experiment_by_name("humpback")
    for name in queued:
        (parent,) = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{name}'")
        children = client.search_runs([exp.experiment_id],
                                      filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        ran = {c.info.run_name for c in children}
        assert "select iter1" in ran, ran
        assert not ran & {"train backward", "augment", "train m0", "score iter1"}, ran
        assert parent.data.tags["dvc.exp"] == name and parent.data.params["curate.threshold"] in ("2", "5")


def test_rewriting_is_an_ablation_that_dvc_exp_run_turns_on(repo):
    """Back-and-forth translation: off in the build (train@i reads A_k as curated), `dvc exp run -S
    rewrite.enabled=true` rewrites each iteration's A_k with the base model, trains M_i on the
    rewrites, and `dvc exp show` puts both runs side by side."""
    dest, env, _ = repo
    for i in (1, 2):
        assert json.loads((dest / f"metrics/rewrite/iter{i}.json").read_text()) == {"iteration": i, "enabled": False}
        assert pq.read_table(dest / f"data/rewritten/iter{i}/pairs.parquet").num_rows == 0
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "results"], dest, env)
    log = _run([str(BIN / "dvc"), "exp", "run", "-n", "rewritten", "-S", "rewrite.enabled=true"], dest, env)
    ran = {s for s in ALL_STAGES if f"Running stage '{s}'" in log}
    assert {"rewrite@1", "train@1", "score@2", "select@2", "rewrite@2", "train@2", "answer@m1", "report"} <= ran, log
    assert not ran & {"augment", "train_m0", "score@1", "select@1"}, log
    for i in (1, 2):
        curated = json.loads((dest / f"metrics/curate/iter{i}.json").read_text())
        rewrite = json.loads((dest / f"metrics/rewrite/iter{i}.json").read_text())
        assert rewrite["enabled"] and rewrite["pairs"] == curated["kept"] == rewrite["rewritten"] > 0
        pairs = pq.read_table(dest / f"data/rewritten/iter{i}/pairs.parquet").to_pylist()
        assert len(pairs) == rewrite["kept"] and all(p["rewritten"] for p in pairs)
        assert any(p["response"] != p["original_response"] for p in pairs)
        cached = (dest / f"data/rewritten/iter{i}/rewrites.jsonl").read_text().splitlines()
        assert len(cached) == rewrite["pairs"]
        assert json.loads((dest / f"metrics/train/m{i}.json").read_text())["curated_pairs"] == rewrite["kept"]
        assert f"data/rewritten/iter{i}" in (dest / f"models/m{i}/README.md").read_text()
    shown = json.loads(_run([str(BIN / "dvc"), "exp", "show", "--json"], dest, env))
    runs = [r["data"] for e in shown for r in [e] + [x["revs"][0] for x in e.get("experiments") or []]
            if r.get("data") and r["data"].get("params")]
    enabled = {d["params"]["params.yaml"]["data"]["rewrite"]["enabled"]:
               d["metrics"]["metrics/rewrite/iter1.json"]["data"] for d in runs if d.get("metrics")}
    assert enabled[False] == {"iteration": 1, "enabled": False} and enabled[True]["rewritten"] > 0
    again = _run([str(BIN / "dvc"), "repro"], dest, env)  # the rewrites are locked: nothing is left to do
    assert "Running stage" not in again


def _wait_queue(dest, env, timeout=900):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        status = _run([str(BIN / "dvc"), "queue", "status"], dest, env)
        if "Queued" not in status and "Running" not in status:
            assert "Failed" not in status, status
            return
        time.sleep(5)
    raise AssertionError("the queue did not finish")


def test_generation_stages_run_on_vllm(repo):
    """engine: vllm in every generation section and judge kind vllm, in a copy of the smoke repo:
    augment, score@1 and evaluate@m1 run on vLLM (the CPU build) through DVC, write complete outputs,
    and a rerun reuses every shard; a shard key names its engine, so hf shards are not taken for vLLM's."""
    dest, env, _ = repo
    work = dest  # the test's own copy of the smoke build
    params = yaml.safe_load((work / "params.yaml").read_text())
    for section in (params["augment"], params["curate"], params["evaluate"]):
        section["generation"]["engine"] = "vllm"
    params["evaluate"]["judge"]["kind"] = "vllm"
    params["vllm"]["kv_cache_gib"] = 0.25
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = ["augment", "score@1", "evaluate@m1"]  # answer@m on vLLM: tests/test_vllm_engine.py
    log = _run([str(BIN / "dvc"), "repro", "--single-item", *stages], work, env, timeout=900)
    for stage in stages:
        assert f"Running stage '{stage}'" in log
    assert "shards generated (in process), 0 reused" in log  # the hf run's candidate shards were not taken for vLLM's
    segments = json.loads((work / "metrics/corpus.json").read_text())["segments"]["kept"]
    augmented = json.loads((work / "metrics/augment.json").read_text())
    assert augmented["segments"] == segments and augmented["candidates"] + sum(augmented["dropped"].values()) == segments
    scores = json.loads((work / "metrics/score/iter1.json").read_text())
    assert scores["pairs"] == augmented["candidates"] and sum(scores["scores"].values()) == scores["pairs"]
    judged = json.loads((work / "metrics/eval/m1.json").read_text())
    assert judged["failed"] == 0 and judged["n_total"] == 6

    again = _run([sys.executable, "pipeline/augment.py", "--no-progress"], work, env, timeout=600)
    assert "0 shards generated" in again and "reused" in again


# --------------------------------------------------------------------- a judge endpoint's bad hour
def _openai_verdict(body):
    """A deterministic judge: its letter depends on the prompt only, so every run agrees."""
    prompt = "\n".join(m["content"] for m in body["messages"])
    return "AB"[hashlib.sha256(prompt.encode()).digest()[0] % 2]


def _alpaca_eval_verdict(body):
    """AlpacaEval 2.0's weighted annotator answers "m" (first shown output) or "M", with logprobs."""
    prompt = "\n".join(m["content"] for m in body["messages"])
    win, lose = ("m", "M") if hashlib.sha256(prompt.encode()).digest()[0] % 2 else ("M", "m")
    return {"content": win, "top_logprobs": {win: math.log(0.7), lose: math.log(0.3)}}


# Each endpoint's bad hour, one scripted reply per request (concurrency 1, max_retries 1): a 500, a 429
# with Retry-After, a malformed body, a reply that is no verdict, a stall past timeout_s. openai: each
# retried and answered, then one pair fails on both attempts (1 missing). alpaca_eval (one verdict
# per pair, its cache saved every 4): the client retries the 429, the 500 and the stall; the reply
# without a verdict is its parser's (asked again next run), and the malformed body ends the run (2 missing).
BAD_HOURS = {
    "openai": (["500", _openai_verdict, "429:0", _openai_verdict, "malformed", _openai_verdict, "Both are fine",
                _openai_verdict, "sleep", _openai_verdict, "500", "500"], _openai_verdict, 10, 1),
    "alpaca_eval": ([_alpaca_eval_verdict, "429:0", _alpaca_eval_verdict, "500", _alpaca_eval_verdict,
                     {"content": "no identifier at all"}, "sleep", "malformed"], _alpaca_eval_verdict, 5, 2),
}


@contextlib.contextmanager
def _restored(dest, env):
    """Params, lock and metrics as they were before the block, outputs checked out of the cache."""
    saved = {p: p.read_bytes() for p in [dest / "params.yaml", dest / "dvc.lock", *(dest / "metrics").rglob("*")]
             if p.is_file()}
    try:
        yield
    finally:
        for p, data in saved.items():
            p.write_bytes(data)
        _run([str(BIN / "dvc"), "checkout", "--force"], dest, env)


@pytest.mark.parametrize("kind", list(BAD_HOURS))
def test_a_partial_evaluation_is_not_locked_and_the_next_repro_asks_only_the_missing_verdicts(repo, kind):
    """evaluate@m2 against a misbehaving endpoint exits non-zero with its finished verdicts kept and
    is not recorded in dvc.lock; a plain `dvc repro` against the healthy endpoint asks only for the
    missing verdicts and locks the stage; the metrics equal those of a run that never failed."""
    from _fake_openai import FakeOpenAI

    dest, env, _ = repo
    script, healthy, verdicts_per_run, missing = BAD_HOURS[kind]
    server = FakeOpenAI(script, key="sk-e2e", default=healthy)
    env = {**env, "HUMPBACK_E2E_KEY": "sk-e2e"}
    judged = dest / "data/eval/judged/m2"
    with _restored(dest, env):
        params = yaml.safe_load((dest / "params.yaml").read_text())
        ev = params["evaluate"]
        # the set's own references: the smoke models' answers are all alike (ties, never asked)
        ev["set"].update(source="alpaca_eval", path="tests/fixtures/alpaca_eval_sample.json", max_prompts=5)
        ev["reference"] = "dataset"
        ev["judge"]["kind"] = kind
        ev["judge"]["openai"].update(base_url=server.url, api_key_env="HUMPBACK_E2E_KEY", concurrency=1,
                                     max_retries=1, timeout_s=1, max_wait_s=0.2)
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        try:
            bad = subprocess.run([str(BIN / "dvc"), "repro", "evaluate@m2"], cwd=dest, env=env, capture_output=True,
                                 text=True, timeout=600)
            assert bad.returncode != 0, bad.stdout[-3000:]
            out = bad.stdout + bad.stderr
            assert "Traceback" not in out, out[-3000:]
            assert re.search(r"incomplete: .*(1 of 5 pairs have no verdict|3 of 5 verdicts are kept)", out), out[-3000:]
            cache = judged / ("judgements.jsonl" if kind == "openai" else "alpaca_eval_annotations.json")
            assert cache.is_file()  # the finished verdicts are on disk
            lock = yaml.safe_load((dest / "dvc.lock").read_text())["stages"]
            assert lock["answer@m2"]["deps"]  # the stages before it finished and were locked
            assert "evaluate@m2" in json.loads(_run([str(BIN / "dvc"), "status", "--json", "evaluate@m2"], dest, env))
            asked = len(server.requests)

            # a plain repro (no -f), now against a healthy endpoint
            log = _run([str(BIN / "dvc"), "repro", "evaluate@m2"], dest, env)
            assert "Running stage 'evaluate@m2'" in log and "Running stage 'answer@m2'" not in log
            assert len(server.requests) - asked == missing  # only the missing verdicts
            assert "Running stage" not in _run([str(BIN / "dvc"), "repro", "evaluate@m2"], dest, env)  # locked
            finished = (dest / "metrics/eval/m2.json").read_bytes()
            m = json.loads(finished)
            assert m["failed"] == 0 and m["n_total"] == 5 and "missing_accepted" not in m

            shutil.rmtree(judged)  # the run that never failed: every verdict asked once, nothing cached
            asked = len(server.requests)
            _run([str(BIN / "dvc"), "repro", "-f", "-s", "evaluate@m2"], dest, env)
            assert len(server.requests) - asked == verdicts_per_run
            assert (dest / "metrics/eval/m2.json").read_bytes() == finished
            if kind == "openai":
                _a_share_of_missing_verdicts_can_be_accepted_and_the_metrics_say_so(dest, env, server, judged)
        finally:
            server.close()


def _a_share_of_missing_verdicts_can_be_accepted_and_the_metrics_say_so(dest, env, server, judged):
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["evaluate"]["max_failed_share"] = 0.2
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(judged)
    server.script = ["500", "500"]  # the first pair's first verdict fails: 1 of 5 pairs
    log = _run([str(BIN / "dvc"), "repro", "evaluate@m2"], dest, env)
    assert "1 of 5 pairs have no verdict" in log and "accepted under evaluate.max_failed_share 0.2" in log
    m = json.loads((dest / "metrics/eval/m2.json").read_text())
    assert m["missing_accepted"] == {"pairs": 1, "of": 5, "max_failed_share": 0.2}
    assert m["failed"] == 1 and m["n_total"] == 4
    shown = _run([str(BIN / "humpback"), "metrics", "metrics/eval/m2.json"], dest, env)
    assert re.search(r"win_rate .*over 4 of 5 pairs: 1 without a verdict accepted", shown), shown

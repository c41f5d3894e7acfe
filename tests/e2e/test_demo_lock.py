"""The committed dvc.lock tells the truth about the demo's data: a fresh copy of the repository
rebuilds the seed, the raw corpus and the segments with exactly the md5 the lock records, whatever
else is installed on the machine."""

from __future__ import annotations

import yaml

from conftest import BIN, ROOT, copy_project, run_ok

CHECKED = {"seed": "data/seed", "raw": "data/raw", "corpus": "data/corpus"}


def _outs(lock: dict) -> dict[str, str]:
    return {f"{stage}:{o['path']}": o["md5"] for stage in CHECKED
            for o in lock["stages"][stage]["outs"] if o["path"] == CHECKED[stage]}


def test_fresh_copy_reproduces_the_committed_data_hashes(tmp_path):
    committed = yaml.safe_load((ROOT / "dvc.lock").read_text())
    env = copy_project(tmp_path)
    # the demo's own params, as committed; base_model runs too (seed reads its tokenizer)
    log = run_ok([str(BIN / "dvc"), "repro", "seed", "corpus"], tmp_path, env)
    assert "Running stage 'raw'" in log and "Running stage 'corpus'" in log
    rebuilt = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert _outs(rebuilt) == _outs(committed), "the committed dvc.lock is stale: run `make demo` and commit it"
    for path in ("metrics/raw.json", "metrics/corpus.json", "metrics/seed.json"):
        assert (tmp_path / path).read_text() == (ROOT / path).read_text(), f"{path} differs from the committed one"

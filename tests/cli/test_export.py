"""`humpback export dataset`: a curated set as a Hugging Face dataset that `datasets` loads, with a
card that says where it came from; the upload is checked up to the Hub call (no network here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from humpback.cli.export import ExportError, push_to_hub
from humpback.cli.main import main
from humpback.core.shards import RAW_SCHEMA
from humpback.curate.select import CURATED_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [{"id": f"c{i}", "instruction": f"How do I use tool {i}?", "response": f"Install tool {i}, then run it.",
          "score": 5, "expected_score": 4.5 - i / 10, "url": f"https://pypi.org/project/tool{i % 3}/"}
         for i in range(5)]
DOCS = [{"id": f"d{j}", "source": "python_packages", "url": f"https://pypi.org/project/tool{j}/",
         "name": f"tool{j}==1.0", "license": "MIT" if j < 2 else "Apache-2.0", "format": "markdown",
         "text": "..."} for j in range(3)]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "data/curated/iter1").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(PAIRS, schema=CURATED_SCHEMA), tmp_path / "data/curated/iter1/curated.parquet")
    (tmp_path / "data/raw").mkdir()
    pq.write_table(pa.Table.from_pylist(DOCS, schema=RAW_SCHEMA), tmp_path / "data/raw/part-00000.parquet")
    for rel, obj in {"metrics/curate/iter1.json": {"pairs": 9, "kept": 5, "kept_share": 0.5556, "well_formed": 0.8},
                     "metrics/score/iter1.json": {"curator_check": {"auc": 0.61}}}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(obj))
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    lock = {"schema": "2.0", "stages": {
        "select@1": {"outs": [{"path": "data/curated/iter1", "hash": "md5", "md5": "abc.dir"}]},
        "train_m0": {"outs": [{"path": "models/m0", "hash": "md5", "md5": "m0hash.dir"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_export_writes_a_dataset_that_datasets_loads_with_a_card_of_its_provenance(project):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    result = CliRunner().invoke(main, ["export", "dataset", "1", "out"])
    assert result.exit_code == 0, result.output
    assert "out: 5 pairs of iteration 1" in result.output
    ds = load_dataset(str(project / "out"), split="train")
    assert ds.num_rows == 5 and ds[0]["instruction"] == "How do I use tool 0?"
    assert set(ds.column_names) == {"instruction", "response", "score", "expected_score", "url", "id"}
    card = DatasetCard.load(project / "out/README.md")
    data = card.data.to_dict()
    assert data["license"] == "other"  # two licences among the sources
    assert data["size_categories"] == "n<1K" and data["task_categories"] == ["text-generation"]
    meta = data["humpback"]
    assert meta["licenses"] == {"MIT": 4, "Apache-2.0": 1}  # per pair: tool0, tool1 (MIT) and tool2
    assert meta["sources"] == {"python_packages": 5}
    assert meta["recipe"]["threshold"] == yaml.safe_load((project / "params.yaml").read_text())["curate"]["threshold"]
    assert meta["recipe"]["curator"] == "m0" and meta["curator_auc"] == 0.61 and meta["well_formed"] == 0.8
    assert "| instructions that read as a request (well-formed share) | 0.8 |" in card.text
    assert meta["dvc_md5"]["data/curated/iter1"] == "abc.dir" and meta["dvc_md5"]["models/m0"] == "m0hash.dir"
    assert "| pairs | 5 (of 9 candidates) |" in card.text and "MIT (4)" in card.text


def test_export_names_a_missing_curated_set(project):
    result = CliRunner().invoke(main, ["export", "dataset", "3", "out"])
    assert result.exit_code == 1 and "no curated set at data/curated/iter3/curated.parquet" in result.output
    assert "dvc repro select@3" in result.output


def test_push_to_hub_takes_the_token_from_the_environment_only(project, monkeypatch):
    CliRunner().invoke(main, ["export", "dataset", "1", "out"])
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ExportError, match="HF_TOKEN"):
        push_to_hub("out", "me/pairs")

    class Recorder:  # stands in for huggingface_hub.HfApi: no network here
        calls = []

        def create_repo(self, *args, **kwargs):
            self.calls.append(("create_repo", args, kwargs))

        def upload_folder(self, **kwargs):
            self.calls.append(("upload_folder", (), kwargs))

    api = Recorder()
    assert push_to_hub("out", "me/pairs", private=True, api=api) == "https://huggingface.co/datasets/me/pairs"
    assert api.calls[0] == ("create_repo", ("me/pairs",), {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert api.calls[1][2]["folder_path"] == "out" and api.calls[1][2]["repo_type"] == "dataset"


def test_the_command_uploads_what_it_exported(project, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id))

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs["folder_path"], sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    result = CliRunner().invoke(main, ["export", "dataset", "1", "out", "--push-to-hub", "me/pairs"])
    assert result.exit_code == 0, result.output
    assert calls == [("token", "hf_test"), ("create_repo", "me/pairs"), ("upload", "out", ["README.md", "data"])]
    assert "uploaded: https://huggingface.co/datasets/me/pairs" in result.output
    assert 'load_dataset("me/pairs"' in (project / "out/README.md").read_text()

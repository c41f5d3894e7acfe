"""The keys of bytes on disk: DVC's md5, through DVC's own state where DVC has hashed the path."""

import shutil
import subprocess

import pytest
import yaml

from conftest import BIN, project_env
from humpback.core.keys import content_key, path_md5


def _model_folder(path):
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(bytes(range(256)) * 4096)
    (path / "config.json").write_text('{"layers": 2}\n')
    return path


@pytest.fixture
def dvc_repo(tmp_path):
    """A git + DVC repository whose one stage writes a model folder, after `dvc repro`."""
    repo, env = tmp_path / "repo", project_env()
    repo.mkdir()
    _model_folder(tmp_path / "src-model")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"build": {
        "cmd": f"cp -r {tmp_path / 'src-model'} models/m", "outs": ["models/m"]}}}))
    (repo / "models").mkdir()
    for args in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"], [str(BIN / "dvc"), "repro", "-q"]):
        subprocess.run(args, cwd=repo, env=env, check=True, capture_output=True)
    return repo


def test_a_folder_is_keyed_by_the_md5_dvc_records_for_it(dvc_repo, tmp_path):
    lock = yaml.safe_load((dvc_repo / "dvc.lock").read_text())
    recorded = lock["stages"]["build"]["outs"][0]["md5"]
    assert path_md5(dvc_repo / "models/m") == recorded.removesuffix(".dir")
    # outside any DVC repository the same bytes give the same key (DVC's recipe, from the bytes)
    assert path_md5(tmp_path / "src-model") == recorded.removesuffix(".dir")


def test_a_folder_dvc_has_hashed_is_not_read_again(dvc_repo, monkeypatch):
    """The point of reusing DVC's hash: a 14 GB checkpoint costs a stat per file, not a read."""
    key = path_md5(dvc_repo / "models/m")  # DVC's state has it (from `dvc repro`, and now from us)
    import dvc_data.hashfile.build as dvc_build

    hash_bytes, read = dvc_build.hash_file, []

    def recording(path, *args, **kwargs):  # what DVC hashes from the bytes: files not in its state
        read.append(path)
        return hash_bytes(path, *args, **kwargs)

    monkeypatch.setattr(dvc_build, "hash_file", recording)
    assert path_md5(dvc_repo / "models/m") == key
    assert not [p for p in read if str(dvc_repo) in str(p)], f"read although DVC's state has their hash: {read}"


def test_any_changed_byte_or_name_changes_the_key(tmp_path):
    a = _model_folder(tmp_path / "a")
    key = path_md5(a)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert path_md5(b) == key  # names and bytes, not where the folder lies
    with open(b / "model.safetensors", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff")
    assert path_md5(b) != key
    (a / "config.json").rename(a / "config2.json")
    assert path_md5(a) != key
    assert len(key) == 32 and path_md5(a / "config2.json") != path_md5(a / "model.safetensors")


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        path_md5(tmp_path / "nothing")


def test_content_key_covers_its_parts_in_order():
    assert content_key("a", "b") == content_key("ab") != content_key("b", "a")
    assert len(content_key({"x": 1}, length=12)) == 12
    assert content_key({"x": 1, "y": 2}) == content_key({"y": 2, "x": 1})

"""One source of defaults: config.py == params.yaml; profiles are overlays applied by one command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from humpback.cli.main import main
from humpback.cli.profiles import apply, available, defaults, overlay_of, resolve
from humpback.core.config import ConfigError, flatten
from humpback.params import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "pipeline" / "profiles"


def test_params_yaml_is_the_defaults_and_spells_out_every_key():
    assert load_config(ROOT / "params.yaml") == Config()
    written = flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))
    missing = set(flatten(defaults())) - set(written)
    assert not missing, f"params.yaml lacks {sorted(missing)}: write every key with its default"


@pytest.mark.parametrize("name", available(PROFILES))
def test_every_profile_is_a_valid_overlay_of_only_what_differs(name):
    source, overlay = overlay_of(name, PROFILES)
    resolve(overlay, source)  # validates
    base = flatten(defaults())
    same = [k for k, v in flatten(overlay).items() if k in base and base[k] == v]
    assert not same, f"profile {name} repeats defaults: {same}"


@pytest.mark.parametrize("name", available(PROFILES))
def test_apply_writes_params_that_validate_and_demo_restores_the_defaults(tmp_path, name):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    changed = apply(name, params, PROFILES)
    assert changed and load_config(params) == Config.model_validate(resolve(overlay_of(name, PROFILES)[1], name))
    text = params.read_text()
    assert "# the paper's S_a, on seed examples" in text  # comments survive
    apply("demo", params, PROFILES)
    assert load_config(params) == Config()


def test_apply_changes_only_the_profile_keys_and_dvc_can_read_them(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    changed = dict((k, new) for k, _, new in apply("smoke", params, PROFILES))
    assert changed["corpus.max_segments"] == 24 and changed["model.tiny_random.num_layers"] == 2
    assert "train.learning_rate" not in changed
    data = yaml.safe_load(params.read_text())
    assert data["model"]["tiny_random"]["hidden_size"] == 64 and isinstance(data["train"]["learning_rate"], float)
    assert list(data["iterations"]) == ["1", "2"]  # still quoted: DVC's foreach skips numeric keys
    apply("paper", params, PROFILES)  # 1e-05 would be a string to PyYAML: floats keep a dot
    assert yaml.safe_load(params.read_text())["train"]["learning_rate"] == 1e-05


def test_bad_profiles_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpus:\n  max_segment: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'corpus.max_segment'"):
        apply(str(bad), tmp_path / "params.yaml", PROFILES)
    with pytest.raises(ConfigError, match="no profile 'nope'.*available: demo, paper, smoke"):
        overlay_of("nope", PROFILES)
    assert not (tmp_path / "params.yaml").exists()


def test_profile_commands(tmp_path, monkeypatch):
    shutil.copytree(PROFILES, tmp_path / "pipeline" / "profiles")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(main, ["profile", "list"])
    assert listed.exit_code == 0 and "paper" in listed.output and "smoke" in listed.output
    shown = runner.invoke(main, ["profile", "show", "paper"])
    assert "curate.scorer: 'logits' -> 'generate'" in shown.output
    applied = runner.invoke(main, ["profile", "apply", "smoke"])
    assert applied.exit_code == 0 and "corpus.max_segments: 16 -> 24" in applied.output
    assert load_config("params.yaml").corpus.max_segments == 24
    missing = runner.invoke(main, ["profile", "apply", "nope"])
    assert missing.exit_code == 1 and "no profile 'nope'" in missing.output

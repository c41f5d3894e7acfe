import json

from click.testing import CliRunner

from _texts import TEXTS
from humpback.cli import main


def test_help_lists_commands():
    out = CliRunner().invoke(main, ["--help"]).output
    for cmd in ("check-params", "segment", "metrics"):
        assert cmd in out


def test_check_params_ok_and_error(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text("corpus:\n  max_segments: 5\n")
    result = CliRunner().invoke(main, ["check-params", str(good)])
    assert result.exit_code == 0 and "cap 5" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpus:\n  max_segment: 5\n")
    result = CliRunner().invoke(main, ["check-params", str(bad)])
    assert result.exit_code == 2 and "unknown key 'corpus.max_segment'" in result.output


def test_segment_shows_verdicts(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(f"# MENU\n\nshort\n\n# Composting\n\n{TEXTS['gardening']}\n\n{TEXTS['sourdough']}\n")
    result = CliRunner().invoke(main, ["segment", str(doc), "--params", str(tmp_path / "none.yaml")])
    assert result.exit_code == 0, result.output
    assert "all_caps_header" in result.output and "kept" in result.output
    assert "1 segment(s) kept" in result.output


def test_metrics_prints_flat_keys(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"segments": {"kept": 3, "dropped": {"too_short": 2}}}))
    result = CliRunner().invoke(main, ["metrics", str(m), "--match", "dropped"])
    assert result.exit_code == 0
    assert "segments.dropped.too_short" in result.output and "segments.kept" not in result.output


def test_stage_scripts_do_not_shadow_the_standard_library():
    """pipeline/ is sys.path[0] for its scripts: a pipeline/select.py broke `import subprocess`."""
    import sys
    from pathlib import Path

    scripts = [p.stem for p in (Path(__file__).resolve().parents[1] / "pipeline").glob("*.py")]
    assert scripts and not set(scripts) & set(sys.stdlib_module_names)

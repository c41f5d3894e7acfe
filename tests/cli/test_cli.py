import json

from click.testing import CliRunner

from _texts import TEXTS
from conftest import FIXTURES
from humpback.cli.main import main


def test_help_lists_commands():
    out = CliRunner().invoke(main, ["--help"]).output
    for cmd in ("check-params", "check", "profile", "snapshot", "segment", "metrics", "generate", "inspect", "export", "ui"):
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


def test_check_names_every_dangling_link_and_unreadable_file_under_raw_path(tmp_path, monkeypatch):
    """A manual copied with `cp -r` keeps links into /usr/share/javascript: DVC fails hashing them
    with a bare [Errno 2]; `humpback check` lists each one first."""
    import os

    corpus = tmp_path / "manual"
    (corpus / "_static").mkdir(parents=True)
    (corpus / "index.html").write_text("<h1>Manual</h1><p>text</p>")
    (corpus / "_static" / "underscore.js").symlink_to("/usr/share/javascript/humpback-test-absent/underscore.js")
    (corpus / "docs").symlink_to(tmp_path / "gone")  # a link to a folder that is not there
    (corpus / "ok.md").symlink_to(corpus / "index.html")  # a link that resolves: fine
    secret = corpus / "secret.txt"
    secret.write_text("x")
    secret.chmod(0)
    params = tmp_path / "params.yaml"
    params.write_text(f"raw:\n  path: {corpus}\n  sources:\n  - type: files\n    path: {corpus}\n")
    result = CliRunner().invoke(main, ["check", "--params", str(params)])
    assert result.exit_code == 1
    assert f"{corpus}/_static/underscore.js: dangling link to /usr/share/javascript/humpback-test-absent/underscore.js" in result.output
    assert f"{corpus}/docs: dangling link to {tmp_path / 'gone'}" in result.output
    if os.geteuid() != 0:  # root reads every file
        assert f"{secret}: cannot be read" in result.output
    assert "ok.md" not in result.output and "index.html" not in result.output
    assert "cannot be hashed by DVC" in result.output and "cp -rL" in result.output
    for link in ("_static/underscore.js", "docs"):
        (corpus / link).unlink()
    secret.chmod(0o644)
    result = CliRunner().invoke(main, ["check", "--params", str(params)])
    assert result.exit_code == 0 and "every file under" in result.output


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


def test_metrics_marks_a_win_rate_whose_judge_fails_the_bar(tmp_path):
    from humpback.report.summary import judge_reliability

    base = {"win_rate": 49.6, "n_total": 68, "failed": 0}
    demo = tmp_path / "m1.json"  # the demo's 135M judge: always the same verdict for the same position
    demo.write_text(json.dumps(base | {"judge_order_agreement": 0.0, "judge_first_position_preference": 0.76}))
    good = tmp_path / "m2.json"
    good.write_text(json.dumps(base | {"judge_order_agreement": 0.7, "judge_first_position_preference": 0.53}))
    out = CliRunner().invoke(main, ["metrics", str(demo), str(good), "--match", "win_rate"]).output
    demo_line, good_line = [line for line in out.splitlines() if line.strip().startswith("win_rate")]
    assert "unreliable judge: order agreement 0.00 < 0.60" in demo_line and "first-position preference 0.76" in demo_line
    assert "unreliable" not in good_line
    assert judge_reliability(base | {"judge_order_agreement": 0.7, "judge_first_position_preference": 0.5,
                                     "failed": 9})["reasons"] == ["9 of 68 verdicts unparsed (over 10%)"]
    assert judge_reliability(base | {"is_reference": True}) is None  # the reference against itself


def test_stage_scripts_do_not_shadow_the_standard_library():
    """pipeline/ is sys.path[0] for its scripts: a pipeline/select.py broke `import subprocess`."""
    import sys
    from pathlib import Path

    scripts = [p.stem for p in (Path(__file__).resolve().parents[2] / "pipeline").glob("*.py")]
    assert scripts and not set(scripts) & set(sys.stdlib_module_names)


def _curated(path):
    import pyarrow as pa

    from humpback.core.shards import write_table_atomic
    from humpback.curate.select import CURATED_SCHEMA

    rows = [{"id": f"c{i}", "instruction": f"How do I do thing {i}?", "response": f"Do it like this {i}. " * 20,
             "score": s, "expected_score": e, "url": None} for i, (s, e) in enumerate([(5, 4.6), (3, 3.1), (4, 4.2)])]
    write_table_atomic(pa.Table.from_pylist(rows, schema=CURATED_SCHEMA), path / "curated.parquet")


def test_inspect_curated_pairs_filtered_and_sorted(tmp_path):
    _curated(tmp_path)
    result = CliRunner().invoke(main, ["inspect", str(tmp_path), "--min-score", "4", "--sort", "-score"])
    assert result.exit_code == 0, result.output
    assert "curated, 2 of 3 rows" in result.output
    assert result.output.index("c0") < result.output.index("c2") and "c1" not in result.output
    expected = CliRunner().invoke(main, ["inspect", str(tmp_path), "--expected", "--max-score", "4.5"])
    assert "curated, 2 of 3 rows" in expected.output and "c0" not in expected.output


def test_inspect_scores_beside_the_curator_check(tmp_path):
    """Regression: the curator check's file in a scores folder (another schema) made `inspect` fail."""
    import pyarrow as pa

    from humpback.core.shards import write_table_atomic
    from humpback.curate.check import CHECK_SCHEMA
    from humpback.curate.score import SCORE_SCHEMA

    scores = tmp_path / "scores"
    write_table_atomic(pa.Table.from_pylist([{"id": "c0", "iteration": 1, "curator": "m", "scorer": "generate",
                                              "score": 5, "raw": "Score: 5"}], schema=SCORE_SCHEMA),
                       scores / "part-00000-a-k.parquet")
    write_table_atomic(pa.Table.from_pylist([{"id": "c0", "kind": "other_response", "instruction": "q", "text": "t",
                                              "score": 1}], schema=CHECK_SCHEMA), scores / "_curator_check-k.parquet")
    result = CliRunner().invoke(main, ["inspect", str(scores), "-n", "0"])
    assert result.exit_code == 0 and "scores, 1 of" in result.output and "Score: 5" in result.output, result.output


def test_snapshot_then_inspect_the_raw_documents(tmp_path):
    """`humpback snapshot packages` writes a file the raw stage reads; `inspect` shows data/raw."""
    from humpback.data.config import FilesSource, RawConfig
    from humpback.data.raw import build_raw

    snap = tmp_path / "corpus" / "pages.jsonl"
    result = CliRunner().invoke(main, ["snapshot", "packages", str(snap), "--max-documents", "3"])
    assert result.exit_code == 0 and "3 documents" in result.output, result.output
    build_raw(RawConfig(path=str(snap.parent), sources=[FilesSource(type="files", path=str(snap))]),
              tmp_path / "raw", progress=False)
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "raw"), "-n", "0"])
    assert shown.exit_code == 0 and "raw, 3 of 3 rows" in shown.output, shown.output
    both = CliRunner().invoke(main, ["snapshot", "packages", str(snap), "--license", "MIT", "--any-license"])
    assert both.exit_code != 0 and "exclude each other" in both.output


def test_inspect_annotations_and_errors(tmp_path):

    fixture = FIXTURES / "annotations.json"
    result = CliRunner().invoke(main, ["inspect", str(fixture), "--max-score", "1.5", "-n", "0"])
    assert result.exit_code == 0, result.output
    annotations = json.loads(fixture.read_text())
    n = sum(a["preference"] is not None and a["preference"] <= 1.5 for a in annotations)
    assert f"annotations, {n} of {len(annotations)} rows" in result.output
    (tmp_path / "x.json").write_text(json.dumps([{"foo": 1}]))
    bad = CliRunner().invoke(main, ["inspect", str(tmp_path / "x.json")])
    assert bad.exit_code != 0 and "not a humpback dataset" in bad.output
    missing = CliRunner().invoke(main, ["inspect", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "no such file or folder" in missing.output


def test_export_alpaca_eval_copies_outputs_and_annotations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = CliRunner().invoke(main, ["export", "alpaca-eval", "m1"])
    assert missing.exit_code != 0 and "dvc repro answer@m1" in missing.output
    outputs = [{"instruction": "q", "output": "a", "generator": "m1", "dataset": "demo"}]
    answers = tmp_path / "data/eval/answers"
    answers.mkdir(parents=True)
    (answers / "m1.json").write_text(json.dumps(outputs))
    judged = tmp_path / "data/eval/judged/m1"
    judged.mkdir(parents=True)
    (judged / "annotations.json").write_text("[]")
    result = CliRunner().invoke(main, ["export", "alpaca-eval", "m1"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "alpaca_eval/m1/model_outputs.json").read_text()) == outputs
    assert (tmp_path / "alpaca_eval/m1/annotations.json").exists()


def test_generate_answers_and_names_a_missing_model(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["generate", str(tiny_model_dir), "Say hi.", "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output
    missing = CliRunner().invoke(main, ["generate", "m9", "Say hi."])
    assert missing.exit_code != 0 and "no model at 'models/m9'" in missing.output


def test_ui_without_a_store_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    result = CliRunner().invoke(main, ["ui"])
    assert result.exit_code != 0 and "run `dvc repro` first" in result.output


def test_ui_runs_one_server_worker_unless_told_otherwise(tmp_path, monkeypatch):
    """One worker: the UI starts faster (about 8 s against 10-13 s with MLflow's default 4 here)."""
    import humpback.cli.ui as ui

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    (tmp_path / "mlflow.db").touch()
    monkeypatch.setattr(ui, "runs_page", lambda experiment: "")  # the empty file is no store
    served = []
    monkeypatch.setattr(ui, "_serve", lambda cmd, env: served.append(cmd) or 0)
    for args, workers in (([], "1"), (["--workers", "3"], "3")):
        result = CliRunner().invoke(main, ["ui", *args])
        assert result.exit_code == 0, result.output
        cmd = served.pop()
        assert cmd[cmd.index("--workers") + 1] == workers

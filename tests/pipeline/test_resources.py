"""Resources that run out while a stage writes: one line naming the path, no traceback, and nothing
partial left under an output's name (issue "Nothing lost, nothing fatal", item 5)."""

from __future__ import annotations

import errno
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "pipeline"))


def _file_size_limit(limit: int):
    """A full disk as root can feel it too: writes past RLIMIT_FSIZE fail with EFBIG."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_stage_that_runs_out_of_space_names_the_output_and_leaves_nothing_half_written(tmp_path):
    out = tmp_path / "raw"
    proc = subprocess.run([sys.executable, "pipeline/raw.py", "--out", str(out), "--metrics", str(tmp_path / "m.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(20_000))
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write {out}/part-") and "(EFBIG)" in last and "rerun the stage" in last
    assert "Traceback" not in proc.stderr
    assert not [p for p in out.rglob("*") if p.is_file()]  # no shard, no temp file
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("code, hint", [(errno.ENOSPC, "free disk space"), (errno.EROFS, "read-only"),
                                        (errno.EACCES, "writable")])
def test_resource_errors_name_the_output_not_its_temp_file(code, hint):
    from _common import resource_error_message

    exc = OSError(code, "refused", "/data/out/.part-00000-abc.parquet.tmp-4242")
    message = resource_error_message(exc)
    assert message.startswith("error: cannot write /data/out/part-00000-abc.parquet: refused")
    assert errno.errorcode[code] in message and hint in message
    assert resource_error_message(OSError(errno.ENOENT, "missing", "x")) is None


def test_stages_leave_fast_with_their_exit_code_and_complete_outputs(tmp_path):
    """run_stage skips Python's module teardown (2-3 s a stage) but keeps the exit code, the exit
    handlers and every byte of the outputs."""
    import json

    import pyarrow.parquet as pq

    ok = subprocess.run([sys.executable, "pipeline/raw.py", "--out", str(tmp_path / "raw"), "--metrics",
                         str(tmp_path / "m.json"), "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "raw: 120 of 120 documents kept" in ok.stderr  # the last log line made it out
    metrics = json.loads((tmp_path / "m.json").read_text())
    shards = sorted((tmp_path / "raw").glob("*.parquet"))
    assert sum(pq.read_metadata(s).num_rows for s in shards) == metrics["documents"]["kept"] == 120
    bad = subprocess.run([sys.executable, "pipeline/raw.py", "--params", str(tmp_path / "none.yaml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "none.yaml" in bad.stderr
    usage = subprocess.run([sys.executable, "pipeline/raw.py", "--no-such-option"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert usage.returncode == 2 and "No such option" in usage.stderr

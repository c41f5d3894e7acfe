"""`humpback ui` stops everything it started when it is stopped (regression: after SIGTERM the MLflow
server, its job runner and queue consumers, about 1.5 GB, kept running)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from conftest import start_ui
from humpback.tracking.store import setup


def _processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid, pgid = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        found.append((int(stat.parent.name), state, int(ppid), int(pgid)))
    return found


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    return [pid for pid, state, _, group in _processes() if group == pgid and state != "Z"]


def _children(pid: int) -> list[int]:
    return [p for p, _, parent, _ in _processes() if parent == pid]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# the last case: started with SIGINT ignored (a script's background job, a test runner that ignores
# it), where Python installs no Ctrl-C handler of its own; `humpback ui` must still stop on SIGINT
@pytest.mark.parametrize("sig, preexec", [(signal.SIGTERM, None), (signal.SIGINT, None),
                                          (signal.SIGINT, _ignore_sigint)])
def test_stopping_ui_stops_the_mlflow_server_and_its_workers(tmp_path, sig, preexec):

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "DVC_ROOT": str(tmp_path)}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        exp_id = setup("humpback")  # creates the store
    finally:
        os.environ.clear()
        os.environ.update(old)
    proc, url, printed = start_ui(tmp_path, env, preexec_fn=preexec)
    assert printed == f"{url}/#/experiments/{exp_id}/runs"  # lands on the runs, not MLflow's GenAI overview
    (server,) = _children(proc.pid)
    pgid = os.getpgid(server)
    assert pgid != os.getpgid(proc.pid) and _group_members(pgid)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 0
    deadline = time.time() + 30
    while _group_members(pgid) and time.time() < deadline:
        time.sleep(0.2)
    assert _group_members(pgid) == []

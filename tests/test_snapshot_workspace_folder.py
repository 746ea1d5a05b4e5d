"""A workspace folder inside a snapshotted folder is never copied: copying opens and closes runyard.db,
which drops this process's SQLite locks (POSIX) and lost later writes (found by the studio helper)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runyard import Experiment, Workspace
from runyard.core.snapshot import snapshot_files


def _runs_seen_by_another_process(path: Path) -> str:
    code = f"from runyard import Workspace; print(len(Workspace.get({str(path)!r}).store.list_runs()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return done.stdout.strip() + done.stderr[-400:]


def test_a_workspace_not_named_dot_runyard_is_left_out_of_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print('hi')\n")
    ws = Workspace.create(tmp_path / "ws7")
    assert snapshot_files(tmp_path) == [Path("train.py")]
    Experiment(ws, "probe").start_logging(display_name="a").complete()  # snapshots "." by default
    assert _runs_seen_by_another_process(ws.path) == "1"
    Experiment(ws, "probe").start_logging(display_name="b").complete()
    assert _runs_seen_by_another_process(ws.path) == "2"

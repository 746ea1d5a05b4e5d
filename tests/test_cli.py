"""The real `runyard` command line against a real workspace. The first test runs it as a subprocess
(`python -m runyard`: the entry point, exit codes and streamed output of a real process); the others call the
same `main()` in this process (conftest.invoke_cli), which saves ~2 s of interpreter start per command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import SourceDir, invoke_cli, run_cli

TRAIN = """
import sys
from runyard import Run
run = Run.get_context()
for i in range(3):
    run.log("loss", 1.0 / (i + 1))
print("args:", sys.argv[1:])
print("to stderr", file=sys.stderr)
"""


Cli = Callable[..., subprocess.CompletedProcess[str]]


def _submit(tmp_path: Path, source_dir: SourceDir, *extra: str, cli: Cli = invoke_cli) -> tuple[str, str]:
    source_dir.gen({"train.py": TRAIN})
    result = cli(
        "submit",
        str(source_dir.path / "train.py"),
        "-e",
        "cli-test",
        *extra,
        "--",
        "--lr",
        "0.1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    listed = cli("runs", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)[0]["runId"], result.stdout


def test_submit_creates_a_workspace_streams_and_records(tmp_path: Path, source_dir: SourceDir) -> None:
    run_id, out = _submit(tmp_path, source_dir, cli=run_cli)
    assert (tmp_path / ".runyard" / "config.json").is_file()
    assert "args: ['--lr', '0.1']" in out
    assert "Status: Completed" in out

    metrics = invoke_cli("metrics", run_id, "--json", cwd=tmp_path)
    assert json.loads(metrics.stdout) == {"loss": [1.0, 0.5, 1.0 / 3]}

    shown = json.loads(invoke_cli("runs", "show", run_id, "--json", cwd=tmp_path).stdout)
    assert shown["status"] == "Completed"
    assert "azureml-logs/70_driver_log.txt" in shown["files"]

    log = invoke_cli("logs", run_id, cwd=tmp_path)
    assert "args: ['--lr', '0.1']" in log.stdout and "to stderr" in log.stdout
    prep = invoke_cli("logs", run_id, "--file", "65_job_prep.txt", cwd=tmp_path)
    assert "Command:" in prep.stdout

    table = invoke_cli("runs", "show", run_id, cwd=tmp_path)
    assert "loss" in table.stdout and "Completed" in table.stdout


def test_failed_script_exits_1_with_its_error(tmp_path: Path, source_dir: SourceDir) -> None:
    source_dir.gen({"boom.py": "raise SystemExit(4)\n"})
    result = invoke_cli("submit", str(source_dir.path / "boom.py"), cwd=tmp_path)
    assert result.returncode == 1
    assert "exited with code 4" in result.stderr


def test_filters_and_detach(tmp_path: Path, source_dir: SourceDir) -> None:
    run_id, _ = _submit(tmp_path, source_dir, "--tag", "team=a")
    completed = json.loads(invoke_cli("runs", "list", "--status", "Completed", "--json", cwd=tmp_path).stdout)
    assert [r["runId"] for r in completed] == [run_id]
    assert json.loads(invoke_cli("runs", "list", "--status", "Failed", "--json", cwd=tmp_path).stdout) == []
    detached = invoke_cli(
        "submit", str(source_dir.path / "train.py"), "-e", "other", "--detach", cwd=tmp_path
    )
    assert detached.returncode == 0 and "Submitted run" in detached.stdout
    other = json.loads(invoke_cli("runs", "list", "-e", "other", "--json", cwd=tmp_path).stdout)
    assert len(other) == 1 and other[0]["experiment"] == "other"


def test_user_mistakes_give_one_line_and_exit_1(tmp_path: Path, source_dir: SourceDir) -> None:
    _submit(tmp_path, source_dir)
    cases = [
        (("runs", "show", "no-such-run"), "No run 'no-such-run'"),
        (("runs", "list", "--status", "Done"), "Unknown status 'Done'"),
        (("runs", "list", "-e", "missing"), "No experiment 'missing'"),
        (("logs", "no-such-run"), "runyard runs list"),
        (("submit", "train.py", "--tag", "novalue"), "is not key=value"),
    ]
    for args, expected in cases:
        result = invoke_cli(*args, cwd=source_dir.path if args[0] == "submit" else tmp_path)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_no_workspace_is_explained(tmp_path: Path) -> None:
    result = invoke_cli("runs", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert "No runyard workspace found" in result.stderr and "runyard init" in result.stderr


def test_models_list(tmp_path: Path, source_dir: SourceDir) -> None:
    from runyard import Model, Workspace

    invoke_cli("init", cwd=tmp_path)
    ws = Workspace.get(tmp_path / ".runyard")
    (tmp_path / "m.txt").write_text("weights")
    Model.register(ws, tmp_path / "m.txt", "clf", tags={"stage": "dev"})
    Model.register(ws, tmp_path / "m.txt", "clf")
    listed = json.loads(invoke_cli("models", "list", "--json", cwd=tmp_path).stdout)
    assert [(m["name"], m["version"]) for m in listed] == [("clf", 2), ("clf", 1)]
    latest = json.loads(invoke_cli("models", "list", "--latest", "--json", cwd=tmp_path).stdout)
    assert [(m["name"], m["version"]) for m in latest] == [("clf", 2)]


def test_cli_and_server_processes_do_not_import_the_porting_stack() -> None:
    """Every `runyard` process (each server, each CLI call) paid ~2 s importing libcst and nbformat's schema
    machinery for `runyard port`, which few ever run: they are imported by that command only."""
    code = (
        "import runyard.cli.main, runyard.server.app, sys; "
        "print([m for m in ('nbformat', 'libcst', 'jsonschema') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

"""Scripts that crash, die, get killed or misbehave: the run ends with the right status and an error that
says what happened, the log written before the end is intact, and no logged metric is lost."""

from __future__ import annotations

import json
import re

import pytest

from conftest import SourceDir
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.errors import RunFailedError

MiB = 1024 * 1024


@pytest.fixture
def slow_metric_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """The script's background writer would not flush for a minute: every metric that reaches the store
    before a hard exit has to come from the supervisor's spool replay."""
    monkeypatch.setenv("RUNYARD_METRIC_FLUSH_SECONDS", "60")


def run_script(workspace: Workspace, source_dir: SourceDir, code: str) -> Run:
    source_dir.gen({"train.py": code})
    run = Experiment(workspace, "failures").submit(ScriptRunConfig(source_dir, "train.py"))
    run.wait_for_completion(raise_on_error=False)
    return run


def driver_log(run: Run) -> bytes:
    return run.read_log("azureml-logs/70_driver_log.txt")


def post_log(run: Run) -> str:
    return run.read_log("azureml-logs/75_job_post.txt").decode()


def recovered_from_spool(run: Run) -> int:
    """The count 75_job_post.txt reports for metrics the supervisor replayed from the spool."""
    found = re.search(r"Metrics recovered from the spool[^\n]*?: (\d+)\s*$", post_log(run), re.MULTILINE)
    assert found, post_log(run)
    return int(found.group(1))


def process_status(run: Run) -> dict[str, object]:
    status: dict[str, object] = json.loads(run.read_log("azureml-logs/process_status.json"))["processes"][0]
    return status


LOG_SOME_METRICS = """
    import os, signal, sys
    from runyard import Run
    run = Run.get_context()
    for i in range(50):
        run.log("loss", i / 10)
    run.log("epochs", 7)
    run.log("note", "half way")
    run.log_list("accs", [0.25, 0.5])
    run.log_row("table", epoch=1, acc=0.5)
    run.log_row("table", epoch=2, acc=0.75)
    for i in range(20):
        print(f"progress line {i}")
"""


def assert_metrics_kept(run: Run) -> None:
    metrics = run.get_metrics()
    assert metrics["loss"] == [i / 10 for i in range(50)]
    assert metrics["epochs"] == 7 and type(metrics["epochs"]) is int
    assert metrics["note"] == "half way"
    assert metrics["accs"] == [0.25, 0.5]
    assert metrics["table"] == {"epoch": [1, 2], "acc": [0.5, 0.75]}
    assert run.workspace.store.count_metric_rows(run.id) == 50 + 1 + 1 + 2 + 2


def test_uncaught_exception(workspace: Workspace, source_dir: SourceDir) -> None:
    run = run_script(
        workspace,
        source_dir,
        LOG_SOME_METRICS
        + """
    def train():
        raise RuntimeError("kaboom-42: shapes do not match")
    train()
    """,
    )
    details = run.get_details()
    assert details["status"] == "Failed"
    error = details["error"]
    assert "exited with code 1" in error["message"]
    assert "RuntimeError: kaboom-42: shapes do not match" in error["message"]  # the log's last lines
    assert "progress line 19" in error["message"]
    assert error["exitCode"] == 1
    assert details["exitCode"] == 1
    log = driver_log(run).decode()
    assert "Traceback (most recent call last)" in log
    assert all(f"progress line {i}\n" in log for i in range(20))
    assert_metrics_kept(run)  # an ordinary exit flushes at interpreter exit
    assert process_status(run) == {"rank": 0, "status": "Failed", "exitCode": 1}
    with pytest.raises(RunFailedError, match="kaboom-42") as info:
        run.wait_for_completion(raise_on_error=True)
    assert info.value.error["exitCode"] == 1
    assert run.id in str(info.value)


def test_os_exit_keeps_metrics_logged_before_it(
    workspace: Workspace, source_dir: SourceDir, slow_metric_flush: None
) -> None:
    run = run_script(
        workspace,
        source_dir,
        LOG_SOME_METRICS
        + """
    print("about to os._exit", flush=True)
    os._exit(3)
    """,
    )
    details = run.get_details()
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert "exited with code 3" in message
    assert "about to os._exit" in message
    assert details["error"]["exitCode"] == 3
    log = driver_log(run).decode()
    assert log.index("progress line 19") < log.index("about to os._exit")
    assert_metrics_kept(run)
    assert recovered_from_spool(run) == 56
    assert process_status(run)["exitCode"] == 3
    with pytest.raises(RunFailedError, match="code 3"):
        run.wait_for_completion()


def test_script_that_sigkills_itself(
    workspace: Workspace, source_dir: SourceDir, slow_metric_flush: None
) -> None:
    run = run_script(
        workspace,
        source_dir,
        LOG_SOME_METRICS
        + """
    print("last words", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    print("never printed", flush=True)
    """,
    )
    details = run.get_details()
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert "SIGKILL" in message and "-9" in message
    assert "last words" in message
    assert details["error"]["exitCode"] == -9
    log = driver_log(run).decode()
    assert "last words" in log and "never printed" not in log
    assert_metrics_kept(run)
    assert recovered_from_spool(run) == 56


def test_metrics_flushed_before_a_crash_are_not_duplicated_by_the_replay(
    workspace: Workspace, source_dir: SourceDir, slow_metric_flush: None
) -> None:
    run = run_script(
        workspace,
        source_dir,
        """
        import os
        from runyard import Run
        run = Run.get_context()
        for i in range(30):
            run.log("m", i)
        run.flush()
        for i in range(30, 45):
            run.log("m", i)
        os._exit(5)
        """,
    )
    assert run.get_status() == "Failed"
    assert run.get_metrics()["m"] == list(range(45))
    assert run.workspace.store.count_metric_rows(run.id) == 45
    assert recovered_from_spool(run) == 15


def test_non_utf8_bytes_on_stdout(
    workspace: Workspace, source_dir: SourceDir, capsys: pytest.CaptureFixture[str]
) -> None:
    source_dir.gen(
        {
            "train.py": """
                import sys
                print("before bad bytes", flush=True)
                sys.stdout.buffer.write(b"bad: \\xff\\xfe end\\n")
                sys.stdout.buffer.write("half a char: ".encode() + "✓".encode()[:2] + b"\\n")
                sys.stdout.flush()
                print("after bad bytes", flush=True)
                sys.exit(4)
            """
        }
    )
    run = Experiment(workspace, "failures").submit(ScriptRunConfig(source_dir, "train.py"))
    details = run.wait_for_completion(show_output=True, raise_on_error=False)
    streamed = capsys.readouterr().out
    assert "before bad bytes" in streamed and "after bad bytes" in streamed
    assert "bad: \ufffd\ufffd end" in streamed
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert "exited with code 4" in message
    assert "after bad bytes" in message
    assert "\ufffd" in message
    raw = driver_log(run)
    assert b"bad: \xff\xfe end\n" in raw  # the stored log keeps the exact bytes
    text = run.get_details_with_logs()["logFiles"]["azureml-logs/70_driver_log.txt"]
    assert "after bad bytes" in text


def test_non_utf8_bytes_with_exit_zero_complete(workspace: Workspace, source_dir: SourceDir) -> None:
    run = run_script(
        workspace,
        source_dir,
        """
        import sys
        sys.stdout.buffer.write(b"\\xff\\xfe\\x80 binary junk\\n")
        """,
    )
    assert run.get_details()["status"] == "Completed"
    assert "error" not in run.get_details()
    assert b"\xff\xfe\x80 binary junk" in driver_log(run)


def test_100_mb_of_output(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    run = run_script(
        sqlite_workspace,
        source_dir,
        """
        import sys
        line = b"0123456789" * 10 + b"\\n"  # 101 bytes
        chunk = line * (1024 * 1024 // len(line)) + b"\\n" * (1024 * 1024 % len(line))
        assert len(chunk) == 1024 * 1024
        out = sys.stdout.buffer
        for _ in range(100):
            out.write(chunk)
        out.write(b"DONE\\n")
        out.flush()
        """,
    )
    details = run.get_details()
    assert details["status"] == "Completed", details.get("error")
    path = sqlite_workspace.artifacts.local_path(f"runs/{run.id}/azureml-logs/70_driver_log.txt")
    assert path.stat().st_size == 100 * MiB + len(b"DONE\n")
    assert run.read_log(offset=100 * MiB) == b"DONE\n"
    assert run.read_log(length=101) == b"0123456789" * 10 + b"\n"
    assert process_status(run)["exitCode"] == 0


def test_100_mb_of_output_then_failure_gives_a_short_error(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    run = run_script(
        sqlite_workspace,
        source_dir,
        """
        import sys
        chunk = (b"x" * 99 + b"\\n") * (1024 * 1024 // 100)
        for _ in range(100):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.write(b"final error line\\n")
        sys.stdout.flush()
        sys.exit(2)
        """,
    )
    details = run.get_details()
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert "exited with code 2" in message
    assert message.rstrip().endswith("final error line")
    assert len(message) < 20_000  # the last lines, not the whole log

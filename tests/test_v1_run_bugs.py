"""Run behaviours real Azure ML v1 samples depend on (issue 11, bugs 6-10), with real workspaces and processes.

6. start_logging(outputs=...) creates that folder when the run starts and uploads it when it ends.
7. run.restore_snapshot() writes the run's snapshot as a zip.
8. log_image names its file `<name>_<unixtime>.png` at the run's root.
9. get_details()["status"] is a plain str.
10. wait_for_completion() returns after the job's post-processing (75_job_post.txt is listed).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.errors import InvalidInputError

JOB_POST = "azureml-logs/75_job_post.txt"


# -- 6: start_logging(outputs=...) ----------------------------------------------------------------
def test_start_logging_uploads_the_outputs_folder_at_complete(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "sub").mkdir(parents=True)
    (tmp_path / "outputs" / "early.txt").write_text("early")
    run = Experiment(workspace, "outs").start_logging(snapshot_directory=None)
    (tmp_path / "outputs" / "sub" / "model.pkl").write_bytes(b"weights")  # written while the run is open
    assert not any(n.startswith("outputs/") for n in run.get_file_names())
    run.complete()
    names = set(run.get_file_names())
    assert {"outputs/early.txt", "outputs/sub/model.pkl"} <= names
    back = run.download_file("outputs/sub/model.pkl", tmp_path / "back.pkl")
    assert Path(back).read_bytes() == b"weights"


def test_start_logging_outputs_names_another_folder_or_none(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "default.txt").write_text("d")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.txt").write_text("r")
    exp = Experiment(sqlite_workspace, "outs")
    with exp.start_logging(outputs="results", snapshot_directory=None) as run:
        monkeypatch.chdir(tmp_path / "results")  # resolved when the run started, not when it ends
    assert "outputs/r.txt" in run.get_file_names()
    assert "outputs/default.txt" not in run.get_file_names()
    monkeypatch.chdir(tmp_path)
    quiet = exp.start_logging(outputs=None, snapshot_directory=None)
    quiet.complete()
    assert not any(n.startswith("outputs/") for n in quiet.get_file_names())


def test_start_logging_creates_the_outputs_folder_as_v1_does(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The logging-api notebook writes outputs/myfile.txt right after start_logging(), never creating
    the folder itself: v1 creates it when the run starts (and child_run(outputs=...) too)."""
    monkeypatch.chdir(tmp_path)
    exp = Experiment(sqlite_workspace, "outs")
    run = exp.start_logging(snapshot_directory=None)
    assert (tmp_path / "outputs").is_dir()
    (tmp_path / "outputs" / "myfile.txt").write_text("hello")  # the notebook's next line
    child = run.child_run("part", outputs="child_out/deep")
    assert (tmp_path / "child_out" / "deep").is_dir()
    (tmp_path / "child_out" / "deep" / "c.txt").write_text("c")
    child.complete()
    run.complete()
    assert "outputs/myfile.txt" in run.get_file_names()
    assert "outputs/c.txt" in child.get_file_names()

    elsewhere = tmp_path / "none"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    exp.start_logging(outputs=None, snapshot_directory=None).complete()
    assert list(elsewhere.iterdir()) == []  # outputs=None: no folder
    (elsewhere / "taken").write_text("a file")
    with pytest.raises(InvalidInputError, match=r"is a file.*outputs=None"):
        exp.start_logging(outputs="taken", snapshot_directory=None)


def test_a_failed_interactive_run_keeps_its_outputs_too(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "partial.txt").write_text("p")
    run = Experiment(sqlite_workspace, "outs").start_logging(snapshot_directory=None)
    with pytest.raises(RuntimeError), run:
        raise RuntimeError("boom")
    assert run.get_status() == "Failed"
    assert "outputs/partial.txt" in run.get_file_names()


# -- 7: restore_snapshot ------------------------------------------------------------------------
def test_restore_snapshot_writes_the_runs_snapshot_as_a_zip(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = SourceDir(tmp_path / "project").gen(
        {
            "train.py": "print('hi')\n",
            "lib/util.py": "X = 1\n",
            ".amlignore": "data/\n",
            "data/big.csv": "1,2\n",
        }
    )
    monkeypatch.chdir(tmp_path)
    run = Experiment(workspace, "snap").start_logging(snapshot_directory=str(project), outputs=None)
    snapshot_id = run.get_snapshot_id()
    assert snapshot_id
    zip_path = run.restore_snapshot(path=str(tmp_path / "restored"))
    assert zip_path == str(tmp_path / "restored" / f"{snapshot_id}.zip")
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == [".amlignore", "lib/util.py", "train.py"]
        assert archive.read("lib/util.py") == b"X = 1\n"
    # No path: the zip lands in the current directory, as v1 does.
    assert Path(run.restore_snapshot()).resolve() == (tmp_path / f"{snapshot_id}.zip").resolve()
    run.complete()


def test_take_snapshot_records_a_new_snapshot_and_restore_picks_by_id(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = Experiment(sqlite_workspace, "snap").start_logging(snapshot_directory=None, outputs=None)
    assert run.get_snapshot_id() is None
    with pytest.raises(Exception, match="take_snapshot"):
        run.restore_snapshot()
    (tmp_path / "one.py").write_text("1")
    first = run.take_snapshot(str(tmp_path / "one.py"))
    folder = SourceDir(tmp_path / "two").gen({"a.py": "a", "b/c.py": "c"})
    second = run.take_snapshot(str(folder))
    assert first != second and run.get_snapshot_id() == second
    with zipfile.ZipFile(run.restore_snapshot(first, str(tmp_path))) as archive:
        assert archive.namelist() == ["one.py"]
    with zipfile.ZipFile(run.restore_snapshot(path=str(tmp_path))) as archive:
        assert sorted(archive.namelist()) == ["a.py", "b/c.py"]
    run.complete()


# -- 8: log_image names ---------------------------------------------------------------------------
def test_log_image_files_are_named_like_v1(workspace: Workspace, tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    run = Experiment(workspace, "images").start_logging(snapshot_directory=None, outputs=None)
    run.log_image("roc", path=str(png))
    run.log_image("roc", path=str(png))  # same second: a second file, not an overwrite
    images = sorted(n for n in run.get_file_names() if n.endswith(".png"))
    assert len(images) == 2
    assert all(re.fullmatch(r"roc_\d{10}(_\d+)?\.png", n) for n in images), images
    refs = run.get_metrics()["roc"]
    assert sorted(r.split(f"dcid.{run.id}/", 1)[1] for r in refs) == images
    run.complete()


# -- 9: status is a plain str ---------------------------------------------------------------------
def test_details_status_is_a_plain_string(workspace: Workspace) -> None:
    run = Experiment(workspace, "status").start_logging(snapshot_directory=None, outputs=None)
    run.complete()
    for status in (run.get_details()["status"], run.get_status(), run.status):
        assert type(status) is str and status == "Completed"
    assert json.loads(json.dumps(run.get_details()))["status"] == "Completed"
    failed = Experiment(workspace, "status").start_logging(snapshot_directory=None, outputs=None)
    failed.fail("no")
    details = failed.wait_for_completion(raise_on_error=False)
    assert type(details["status"]) is str and details["status"] == "Failed"


# -- 10: wait_for_completion waits for post-processing ------------------------------------------------
def test_wait_for_completion_returns_after_the_job_post_file(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    """DP-100's scripts end with run.complete(): the run is Completed while its process is still
    running, and its post-processing comes after the process exits."""
    source_dir.gen(
        {
            "train.py": """
                import time
                from runyard import Run
                run = Run.get_context()
                run.log("acc", 0.9)
                run.complete()
                time.sleep(1.5)
            """
        }
    )
    exp = Experiment(sqlite_workspace, "post")
    run = exp.submit(ScriptRunConfig(source_dir, "train.py"))
    details = run.wait_for_completion()
    assert details["status"] == "Completed"
    assert JOB_POST in run.get_file_names()
    assert run.get_metrics()["acc"] == 0.9

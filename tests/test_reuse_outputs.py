"""Reuse that never lies about outputs: a real pipeline, a real scheduler, outputs edited on disk.

The pipeline is prep → train. prep writes two files; train reads them. Between submissions the test
deletes, touches or rewrites prep's output files, keeping the folder, and checks whether prep reruns.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.engine import reuse, step_runner
from runyard.engine.data_paths import verify_output
from runyard.engine.reuse import OUTPUTS_GONE, explain
from runyard.engine.service import SchedulerService
from runyard.pipeline import Pipeline, PipelineData, PipelineRun, PythonScriptStep
from runyard.server.auth import create_token
from runyard.store import SqlStore
from server_process import running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")

PREP = """
    import sys, pathlib
    out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
    (out / "data.txt").write_text("1 2 3")
    (out / "labels").mkdir()
    (out / "labels" / "y.txt").write_text("a b c")
    print("prep ran")
"""
TRAIN = """
    import sys, pathlib
    data = pathlib.Path(sys.argv[sys.argv.index("--data") + 1])
    print("train saw", sorted(p.name for p in data.rglob("*")))
"""


def submit(ws: Workspace, root: Path) -> PipelineRun:
    prepared = PipelineData("prepared")
    prep = PythonScriptStep(
        "prep.py",
        name="prep",
        arguments=["--out", prepared],
        outputs=[prepared],
        source_directory=SourceDir(root / "prep").gen({"prep.py": PREP}),
    )
    train = PythonScriptStep(
        "train.py",
        name="train",
        arguments=["--data", prepared],
        inputs=[prepared],
        source_directory=SourceDir(root / "train").gen({"train.py": TRAIN}),
    )
    run = Pipeline(ws, [prep, train]).submit("outputs", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    return run


def report(run: PipelineRun) -> dict[str, dict[str, Any]]:
    return {item["step"]: item for item in run.get_reuse_report()}


def prepared_of(run: PipelineRun) -> tuple[Path, dict[str, Any]]:
    """prep's output folder and its recorded output, as the reuse check sees it."""
    prep = run.find_step_run("prep")[0]
    recorded = prep._record.data["outputs"]["prepared"]
    return Path(recorded["path"]), recorded


def assert_prep_reran_because(run: PipelineRun, sentence: str) -> None:
    """prep ran a process again, and its reason is verify_output's sentence naming the file."""
    prep = report(run)["prep"]
    assert not prep["reused"]
    assert prep["changed"] == ["outputs-missing"]
    assert prep["reason"] == sentence
    assert "prep ran" in run.find_step_run("prep")[0].get_job_log()  # a process ran


def test_a_deleted_output_file_with_its_folder_kept_reruns_the_step(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    first = submit(sqlite_workspace, tmp_path)
    folder, recorded = prepared_of(first)
    (folder / "labels" / "y.txt").unlink()  # the folder stays: the old check saw nothing wrong

    second = submit(sqlite_workspace, tmp_path)
    first_prep = first.find_step_run("prep")[0].id
    sentence = f"file labels/y.txt in output 'prepared' of run {first_prep} was deleted"
    assert_prep_reran_because(second, sentence)
    assert verify_output(recorded) == sentence
    # the manifest it was checked against lives in the step run's own folder
    assert Path(recorded["manifest"]).is_file() and f"/runs/{first_prep}/" in recorded["manifest"]
    new_folder, new_recorded = prepared_of(second)
    assert new_folder != folder and (new_folder / "labels" / "y.txt").read_text() == "a b c"
    # prep wrote the same bytes again: the same hash, though every mtime is new, so train is reused
    assert new_recorded["hash"] == recorded["hash"]
    assert report(second)["train"]["reusedFrom"] == first.find_step_run("train")[0].id


def test_a_touched_output_is_reused_and_a_rewritten_one_is_not(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    first = submit(sqlite_workspace, tmp_path)
    folder, recorded = prepared_of(first)
    data = folder / "data.txt"
    os.utime(data, ns=(10**18, 10**18))  # a new mtime, the same bytes: rehashed, and still the same
    second = submit(sqlite_workspace, tmp_path)
    assert not [name for name, item in report(second).items() if not item["reused"]]

    data.write_text("9 9 9")  # same size, other bytes
    third = submit(sqlite_workspace, tmp_path)
    sentence = f"file data.txt in output 'prepared' of run {first.find_step_run('prep')[0].id} was changed"
    assert_prep_reran_because(third, sentence)
    assert verify_output(recorded) == sentence
    assert (prepared_of(third)[0] / "data.txt").read_text() == "1 2 3"


def describe_output_v2(path: Path, manifest_file: Path | None = None) -> dict[str, Any]:
    """What runyard recorded for an output before fingerprint version 3: one stream hash, no manifest."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return {
        "path": str(path),
        "size": sum(f.stat().st_size for f in files),
        "files": len(files),
        "hash": digest.hexdigest(),
    }


@contextmanager
def scheduler_before_the_bump(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process serves the workspace as runyard did at fingerprint version 2: the real scheduler,
    with the two things the bump changed put back."""
    with monkeypatch.context() as patch:
        patch.setattr(reuse, "FINGERPRINT_VERSION", 2)
        patch.setattr(step_runner, "describe_output", describe_output_v2)
        service = SchedulerService(ws, idle_seconds=60, echo=lambda line: None)
        thread = threading.Thread(target=service.serve, daemon=True)
        thread.start()
        try:
            yield
        finally:
            service.stop()
            thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_pipeline_from_before_the_fingerprint_bump_reruns_and_says_why(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scheduler_before_the_bump(sqlite_workspace, monkeypatch):
        old = submit(sqlite_workspace, tmp_path)
    old_prep = old.find_step_run("prep")[0]
    assert old_prep._record.data["material"]["v"] == 2
    _, old_recorded = prepared_of(old)
    assert "manifest" not in old_recorded

    new = submit(sqlite_workspace, tmp_path)  # a background scheduler of this runyard
    assert report(new)["prep"]["reason"] == "runyard's fingerprint format changed"
    assert report(new)["prep"]["changed"] == ["v"]
    # train's input hash is now a manifest hash, so its input changed as well
    assert (
        report(new)["train"]["reason"]
        == "input from step 'prep' changed; runyard's fingerprint format changed"
    )
    assert new.find_step_run("prep")[0]._record.data["material"]["v"] == reuse.FINGERPRINT_VERSION >= 3
    assert not [
        name for name, item in report(submit(sqlite_workspace, tmp_path)).items() if not item["reused"]
    ]


def test_a_symlink_in_an_output_is_kept_as_a_link_and_its_target_never_read(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """A link a step leaves in its output may point anywhere; runyard records it, never what it points at."""
    outside = SourceDir(tmp_path / "outside").gen({"secret.txt": "not the output's business"})
    out = PipelineData("linked")
    linker = PythonScriptStep(
        "link.py",
        name="link",
        arguments=["--out", out, str(outside.path / "secret.txt")],
        outputs=[out],
        source_directory=SourceDir(tmp_path / "link").gen(
            {
                "link.py": """
                    import sys, pathlib
                    out = pathlib.Path(sys.argv[2])
                    (out / "real.txt").write_text("real")
                    (out / "secret").symlink_to(sys.argv[3])
                """
            }
        ),
    )
    reader = PythonScriptStep(
        "read.py",
        name="read",
        arguments=[out.as_download()],
        source_directory=SourceDir(tmp_path / "read").gen(
            {
                "read.py": """
                    import sys, pathlib
                    copy = pathlib.Path(sys.argv[1]) / "secret"
                    print("LINK", copy.is_symlink(), copy.readlink() if copy.is_symlink() else "-")
                """
            }
        ),
    )
    run = Pipeline(sqlite_workspace, [linker, reader]).submit("links", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    recorded = run.find_step_run("link")[0]._record.data["outputs"]["linked"]
    assert recorded["files"] == 1 and recorded["links"] == 1
    entries = Path(recorded["manifest"]).read_text()
    assert f'"link": "{outside.path / "secret.txt"}"' in entries and "not the output" not in entries
    # the downstream step's private copy holds the link, not a copy of what it points at
    assert f"LINK True {outside.path / 'secret.txt'}" in run.find_step_run("read")[0].get_job_log()
    outside.gen({"secret.txt": "changed outside the output"})
    assert verify_output(recorded) is None


def test_the_reason_names_what_verify_output_found_when_nothing_else_changed() -> None:
    """The hook engine/execution.py uses to say which file stopped reuse, instead of the general sentence."""
    material = {"v": 3, "name": "prep", "arguments": ["--out", "<output:prepared>"], "inputs": {}}
    sentence = "file data.txt in output 'prepared' of run r1 was deleted"
    decision = explain(material, dict(material), {}, outputs_problem=sentence)
    assert (decision.reused, decision.reason, decision.changed) == (False, sentence, ("outputs-missing",))
    assert explain(material, dict(material), {}).reason == OUTPUTS_GONE
    changed = explain(material, {**material, "arguments": ["--out", "x"]}, {}, outputs_problem=sentence)
    assert changed.reason == "argument --out changed from <output:prepared> to x"  # a real change comes first


def test_in_a_server_workspace_the_manifest_reaches_the_server_and_reuse_checks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step of a server workspace writes its outputs in the local mirror; the manifest is written
    there too, in the step run's folder, and the job's last sync sends it to the server."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    served = Workspace.create(tmp_path / "server" / ".runyard")
    assert isinstance(served.store, SqlStore)
    token, _ = create_token(served.store, "write", name="reuse-outputs")
    with running_server(served.path, tmp_path / "server.log", auth=True) as server:
        ws = Workspace.get(server.url, token=token)
        first = submit(ws, tmp_path)
        prep = first.find_step_run("prep")[0]
        folder, recorded = prepared_of(first)
        mirror_copy = Path(recorded["manifest"])
        on_server = (
            served.path / "artifacts" / "runs" / prep.id / "runyard" / "output-manifests" / "prepared.json"
        )
        assert on_server.read_bytes() == mirror_copy.read_bytes()
        assert "runyard/output-manifests/prepared.json" in prep.get_file_names()

        (folder / "data.txt").unlink()
        second = submit(ws, tmp_path)
        assert_prep_reran_because(second, f"file data.txt in output 'prepared' of run {prep.id} was deleted")

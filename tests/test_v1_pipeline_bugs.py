"""Pipeline bugs real v1 samples hit (issue 11: bugs 1, 4 and 5), and v1's pipeline keywords.

Each test runs real pipelines (a background or threaded scheduler, real step processes, a real SQLite
workspace) and fails without its fix: a step that calls `run.complete()` hung its pipeline; a scheduler
fault escaped the loop and took the scheduler down; `Pipeline(ws, [last])` refused run_after
predecessors; PortDataReference had a local path for `path_on_datastore` and no
`get_port_data_reference()`; a mistyped submit keyword ran silently with the defaults.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, Workspace
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.core.snapshot import snapshot_files
from runyard.engine.containment import CONTROL_LOG
from runyard.engine.service import SchedulerService
from runyard.errors import InvalidInputError
from runyard.pipeline import Pipeline, PipelineData, PipelineRun, PythonScriptStep, StepRun
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord
from runyard.store.snapshots import SnapshotStore

pytestmark = pytest.mark.usefixtures("no_stray_processes")

# The DP-100 labs' step pattern: write outputs, log, then end with run.complete() (and, here, keep
# writing afterwards: the step's outputs must still be recorded when its process exits).
COMPLETES_ITSELF = """
    import pathlib, sys
    from runyard import Run
    run = Run.get_context()
    out = pathlib.Path(sys.argv[1])
    (out / "before.txt").write_text("written before complete()")
    run.log("rows", 3)
    run.complete()
    (out / "after.txt").write_text("written after complete()")
"""
READS = """
    import pathlib, sys
    folder = pathlib.Path(sys.argv[1])
    print("READ", sorted(p.name for p in folder.iterdir()))
"""
WRITES = """
    import pathlib, sys
    out = pathlib.Path(sys.argv[1])
    (out / "sub").mkdir()
    (out / "sub" / "data.txt").write_text("1 2 3")
"""


def step_run(run: Any, name: str) -> StepRun:
    found = run.find_step_run(name)
    assert len(found) == 1, found
    return found[0]  # type: ignore[no-any-return]


# -- bug 1: run.complete() in a step; a scheduler fault fails one pipeline, never the scheduler ------
def test_a_step_that_completes_its_own_run_lets_the_pipeline_go_on(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    src = SourceDir(tmp_path / "src").gen({"first.py": COMPLETES_ITSELF, "second.py": READS})
    data = PipelineData("table")
    first = PythonScriptStep("first.py", arguments=[data], outputs=[data], source_directory=src)
    second = PythonScriptStep("second.py", arguments=[data], inputs=[data], source_directory=src)
    run = Pipeline(sqlite_workspace, [first, second]).submit("completes-itself", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    done = step_run(run, "first.py")
    assert done.get_status() == "Finished"
    assert done.get_metrics() == {"rows": 3}
    assert done.get_output_data("table").file_count == 2  # recorded when the process exited
    assert "READ ['after.txt', 'before.txt']" in step_run(run, "second.py").get_job_log()
    assert "StepTampered" not in str(run.get_details().get("error"))


def insert_pipeline(
    ws: Workspace, graph: dict[str, Any], steps: dict[str, tuple[str, dict[str, Any]]]
) -> str:
    """A pipeline run and its pinned step runs, written with the store directly; `steps` gives each
    step's status and data."""
    exp = Experiment(ws, "faults")
    run_id, now = str(uuid.uuid4()), time.time()
    ids = {name: str(uuid.uuid4()) for name in steps}
    data = {
        "graph": graph,
        "parameters": {},
        "placement": {"workspace": ws.identity, "target": "local"},
        "stepRuns": ids,
    }
    records = [RunRecord(run_id, exp.id, exp.name, RunStatus.NOT_STARTED, PIPELINE_RUN_TYPE, now, data=data)]
    for name, (status, step_data) in steps.items():
        records.append(
            RunRecord(
                ids[name], exp.id, exp.name, status, STEP_RUN_TYPE, now, parent_id=run_id, display_name=name,
                data={"step": name, **step_data},
            )
        )  # fmt: skip
    ws.store.create_runs(records)
    return run_id


@pytest.fixture
def scheduler(sqlite_workspace: Workspace) -> Iterator[tuple[SchedulerService, threading.Thread]]:
    """A SchedulerService on a thread, as `runyard up` runs it: if a fault escapes its loop, it is gone."""
    lines: list[str] = []
    service = SchedulerService(sqlite_workspace, idle_seconds=600, echo=lines.append)
    worker = threading.Thread(target=service.serve, daemon=True)
    worker.start()
    yield service, worker
    service.stop()
    worker.join(timeout=30)


def test_a_scheduler_fault_fails_that_pipeline_with_its_traceback_and_the_scheduler_goes_on(
    sqlite_workspace: Workspace, tmp_path: Path, scheduler: tuple[SchedulerService, threading.Thread]
) -> None:
    ws = sqlite_workspace
    service, worker = scheduler
    src = SourceDir(tmp_path / "src").gen({"write.py": WRITES, "read.py": READS})
    made, old = PipelineData("made"), PipelineData("old")
    write = PythonScriptStep("write.py", name="write", arguments=[made], outputs=[made], source_directory=src)
    before = PythonScriptStep("write.py", name="before", arguments=[old], outputs=[old], source_directory=src)
    read = PythonScriptStep(
        "read.py", name="read", arguments=[made, old], inputs=[made, old], source_directory=src
    )
    graph = Pipeline(ws, [write, before, read]).graph
    snap = SnapshotStore(ws.artifacts).save(src.path, snapshot_files(src.path))
    for step in graph["steps"]:
        step["source"].update(snapshot=snap.id, files=len(snap.files))
    # "before" is recorded Completed with outputs that are not an object (a record written by an older
    # or foreign writer): the scheduler meets it only when "write" exits and "read" becomes ready.
    run_id = insert_pipeline(
        ws,
        graph,
        {
            "write": (RunStatus.NOT_STARTED, {}),
            "before": (RunStatus.COMPLETED, {"outputs": ["not", "an", "object"]}),
            "read": (RunStatus.NOT_STARTED, {}),
        },
    )
    record = wait_for(lambda: (r := ws.store.get_run(run_id)).status in TERMINAL_STATUSES and r, timeout=60)
    assert record.status == RunStatus.FAILED
    error = record.data["error"]
    assert error["code"] == "SystemError" and CONTROL_LOG in error["message"], error
    failed = PipelineRun.get(ws, run_id)
    assert CONTROL_LOG in failed.get_file_names()
    log = failed.read_log(CONTROL_LOG).decode()
    assert "Traceback (most recent call last)" in log and "AttributeError" in log, log
    assert {r.display_name: r.status for r in ws.store.list_descendants(run_id, recursive=False)} == {
        "write": RunStatus.COMPLETED,
        "before": RunStatus.COMPLETED,
        "read": RunStatus.CANCELED,
    }
    assert worker.is_alive()  # the scheduler did not die on it ...
    ok = Pipeline(
        ws, [PythonScriptStep("read.py", name="r", arguments=[str(src.path)], source_directory=src)]
    )
    assert (
        ok.submit("after-fault", show_output=False).wait_for_completion(show_output=False, timeout_seconds=60)
        == "Finished"
    )  # ... and serves the next run
    assert service.given_up == set()  # the failed run ended, so it is not remembered either


# -- bug 4: Pipeline(ws, [last_step]) pulls in every predecessor ----------------------------------------
def test_a_pipeline_of_its_last_step_pulls_in_run_after_and_data_predecessors(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    src = SourceDir(tmp_path / "src").gen({"write.py": WRITES, "read.py": READS})
    made = PipelineData("made")
    setup = PythonScriptStep("read.py", name="setup", arguments=[str(src.path)], source_directory=src)
    write = PythonScriptStep("write.py", name="write", arguments=[made], outputs=[made], source_directory=src)
    write.run_after(setup)  # reachable from "last" only through data, then run_after
    last = PythonScriptStep("read.py", name="last", arguments=[made], inputs=[made], source_directory=src)
    cleanup = PythonScriptStep("read.py", name="cleanup", arguments=[str(src.path)], source_directory=src)
    cleanup.run_after(last)
    pipeline = Pipeline(sqlite_workspace, [cleanup])  # only the final step, as v1 samples do
    assert pipeline.validate() == []
    graph = pipeline.graph
    assert [(s["name"], s["run_after"]) for s in graph["steps"]] == [  # pulled in, in run order
        ("setup", []),
        ("write", ["setup"]),
        ("last", []),
        ("cleanup", ["last"]),
    ]
    run = pipeline.submit("last-step-only", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert "READ ['sub']" in step_run(run, "last").get_job_log()
    closed = Pipeline(sqlite_workspace, [cleanup], resolve_closure=False)
    assert closed.validate() == ["Step 'cleanup' runs after ['last'], which are not in the pipeline."]


# -- bug 5: PortDataReference as v1 ---------------------------------------------------------------------
def test_port_data_reference_is_datastore_relative_and_downloads_below_its_path(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    src = SourceDir(tmp_path / "src").gen({"write.py": WRITES})
    made = PipelineData("made", pipeline_output_name="final_data")
    write = PythonScriptStep("write.py", name="write", arguments=[made], outputs=[made], source_directory=src)
    run = Pipeline(sqlite_workspace, [write]).submit("port-data", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    step = step_run(run, "write")
    ref = step.get_output("made").get_port_data_reference()  # v1: StepRunOutput -> PortDataReference
    same = step.get_output_data("made")
    assert ref.path_on_datastore == same.path_on_datastore == f"azureml/{step.id}/made"
    assert ref.datastore_name == "workspaceblobstore" and ref.name == "made"
    assert run.get_pipeline_output("final_data").path_on_datastore == ref.path_on_datastore
    with pytest.raises(InvalidInputError, match="has no pipeline output 'nope'; it has \\['final_data'\\]"):
        run.get_pipeline_output("nope")
    assert ref.datastore == sqlite_workspace.get_default_datastore()
    assert ref.datastore.local_path(ref.path_on_datastore) == Path(ref.local_path)
    assert sorted(step.get_outputs()) == ["made"]
    assert (Path(ref.local_path) / "sub" / "data.txt").is_file()  # runyard's own: the folder in place
    into = tmp_path / "download"
    got = ref.download(str(into))
    assert got == str(into / "azureml" / step.id / "made")
    assert (Path(got) / "sub" / "data.txt").read_text() == "1 2 3"
    # v1 keeps files already there unless overwrite=True
    (Path(got) / "sub" / "data.txt").write_text("mine")
    ref.download(str(into))
    assert (Path(got) / "sub" / "data.txt").read_text() == "mine"
    ref.download(str(into), overwrite=True)
    assert (Path(got) / "sub" / "data.txt").read_text() == "1 2 3"
    with pytest.raises(TypeError, match="Did you mean 'overwrite'"):
        ref.download(str(into), overwrit=True)  # type: ignore[call-arg]


# -- v1 keywords: a mistyped submit keyword is an error, not the defaults ----------------------------------
def test_a_mistyped_submit_keyword_is_a_type_error_with_a_suggestion(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    src = SourceDir(tmp_path / "src").gen({"read.py": READS})
    pipeline = Pipeline(
        sqlite_workspace, [PythonScriptStep("read.py", arguments=["."], source_directory=src)]
    )
    with pytest.raises(TypeError, match="Did you mean 'pipeline_parameters'"):
        Experiment(sqlite_workspace, "typo").submit(pipeline, pipeline_paramters={"lr": 0.2})
    with pytest.raises(TypeError, match="Did you mean 'pipeline_parameters'"):
        pipeline.submit("typo", pipeline_paramters={"lr": 0.2})  # type: ignore[call-arg]
    assert sqlite_workspace.store.list_runs(experiment_name="typo") == []  # nothing was submitted
    with pytest.warns(UserWarning, match="credential_passthrough"):
        run = Experiment(sqlite_workspace, "typo").submit(
            pipeline, credential_passthrough=True, show_output=False
        )
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"


def test_parent_run_id_makes_the_pipeline_run_a_child_of_a_run_of_its_experiment(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    src = SourceDir(tmp_path / "src").gen({"read.py": READS})
    pipeline = Pipeline(
        sqlite_workspace, [PythonScriptStep("read.py", arguments=["."], source_directory=src)]
    )
    parent = Experiment(sqlite_workspace, "with-parent").start_logging()
    with pytest.raises(InvalidInputError, match="can only be the child of a run of that experiment"):
        pipeline.submit("elsewhere", parent_run_id=parent.id, show_output=False)
    run = pipeline.submit("with-parent", parent_run_id=parent.id, show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert run.parent is not None and run.parent.id == parent.id
    assert [child.id for child in parent.get_children()] == [run.id]
    parent.complete()

"""Running pipelines for real: the background scheduler, step processes, data between steps, failure,
cancel, slots, and the v1 run API (status words, get_steps, find_step_run, get_graph, streaming).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import SourceDir, wait_for
from runyard import Workspace
from runyard.engine.service import service_info
from runyard.errors import RunFailedError
from runyard.pipeline import (
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    StepRun,
)
from runyard.status import ACTIVE_STATUSES, RunStatus

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def folder(tmp_path: Path, name: str, files: dict[str, str]) -> SourceDir:
    return SourceDir(tmp_path / "steps" / name).gen(files)


def step_run(run: PipelineRun, name: str) -> StepRun:
    found = run.find_step_run(name)
    assert len(found) == 1, found
    return found[0]


def statuses(run: PipelineRun) -> dict[str, str]:
    return {
        r.display_name or "": r.status for r in run.workspace.store.list_descendants(run.id, recursive=False)
    }


def scheduler_pid(ws: Workspace) -> int:
    return int(json.loads((ws.path / "scheduler.json").read_text())["pid"])


PREP = """
    import os, sys, pathlib
    from runyard import Run
    out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
    assert out.is_dir(), "runyard creates the output folder before the step starts"
    (out / "a.txt").write_text("x" * 10)
    (out / "sub").mkdir()
    (out / "sub" / "b.txt").write_text("y" * 5)
    run = Run.get_context()
    print(f"CONTEXT {type(run).__name__} {run.id} PARENT {type(run.parent).__name__} {run.parent.id}")
    print(f"PID {os.getpid()}")
    print("hello from prep")
"""
TRAIN = """
    import os, sys, pathlib
    data = pathlib.Path(sys.argv[sys.argv.index("--data") + 1])
    model = pathlib.Path(sys.argv[sys.argv.index("--model") + 1])
    lr = sys.argv[sys.argv.index("--lr") + 1]
    (model / "model.txt").write_text((data / "a.txt").read_text() + " lr=" + lr)
    print(f"PID {os.getpid()}")
    print("hello from train", "lr=" + lr, "env=" + os.environ["AML_PARAMETER_mode"])
"""
EVALUATE = """
    import os, sys, pathlib
    model = pathlib.Path(os.environ["AZUREML_DATAREFERENCE_model"])
    print(f"PID {os.getpid()}")
    print("hello from evaluate", (model / "model.txt").read_text())
"""


def three_steps(ws: Workspace, tmp_path: Path) -> Pipeline:
    prepared = PipelineData("prepared")
    model = OutputFileDatasetConfig("model")
    lr = PipelineParameter("lr", 0.1)
    prep = PythonScriptStep(
        "prep.py",
        name="prep",
        arguments=["--out", prepared],
        outputs=[prepared],
        source_directory=folder(tmp_path, "prep", {"prep.py": PREP}),
    )
    train = PythonScriptStep(
        "train.py",
        name="train",
        arguments=["--data", prepared, "--lr", lr, "--model", model],
        inputs=[prepared],
        params={"mode": "fast"},
        source_directory=folder(tmp_path, "train", {"train.py": TRAIN}),
    )
    evaluate = PythonScriptStep(
        "evaluate.py",
        name="evaluate",
        inputs=[model.as_input()],
        source_directory=folder(tmp_path, "evaluate", {"evaluate.py": EVALUATE}),
    )
    return Pipeline(ws, [prep, train, evaluate], description="three steps")


def test_steps_run_as_child_processes_in_dependency_order(workspace: Workspace, tmp_path: Path) -> None:
    run = three_steps(workspace, tmp_path).submit("pipe-run", show_output=False)
    assert isinstance(run, PipelineRun)
    assert run.get_status() in ("NotStarted", "Running")
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert run.get_status() == "Finished"
    assert run.status == RunStatus.COMPLETED

    steps = list(run.get_steps())
    assert [s.name for s in steps] == ["prep", "train", "evaluate"]
    assert all(isinstance(s, StepRun) and s.get_status() == "Finished" for s in steps)
    prep, train, evaluate = (step_run(run, n) for n in ("prep", "train", "evaluate"))
    assert run.find_step_run("nope") == []
    for s in (prep, train, evaluate):
        assert s.pipeline_run_id == run.id
        assert s.parent is not None and s.parent.id == run.id
        files = s.get_file_names()
        assert {"azureml-logs/70_driver_log.txt", "azureml-logs/65_job_prep.txt"} <= set(files)
        assert "azureml-logs/75_job_post.txt" in files
    # dependency order: each step started after the step it reads from ended
    assert train._record.start_time >= prep._record.end_time  # type: ignore[operator]
    assert evaluate._record.start_time >= train._record.end_time  # type: ignore[operator]

    logs = {s.name: s.get_job_log() for s in (prep, train, evaluate)}
    assert f"CONTEXT StepRun {prep.id} PARENT PipelineRun {run.id}" in logs["prep"]
    assert "hello from train lr=0.1 env=fast" in logs["train"]
    assert "hello from evaluate xxxxxxxxxx lr=0.1" in logs["evaluate"]
    assert train.get_stdout_log() == train.get_stderr_log() == logs["train"]
    pids = {
        int(line.split()[1]) for text in logs.values() for line in text.splitlines() if line.startswith("PID")
    }
    assert len(pids) == 3  # three separate processes ...
    assert os.getpid() not in pids  # ... none of them this one
    assert scheduler_pid(workspace) not in pids  # ... nor the scheduler


def test_outputs_are_recorded_with_path_size_and_file_count(workspace: Workspace, tmp_path: Path) -> None:
    run = three_steps(workspace, tmp_path).submit("pipe-outputs", show_output=False)
    run.wait_for_completion(show_output=False)
    prep = step_run(run, "prep")
    prepared = prep.get_output_data("prepared")
    assert prepared.size == 15 and prepared.file_count == 2
    assert Path(prepared.local_path).is_dir()
    assert (Path(prepared.local_path) / "sub" / "b.txt").read_text() == "yyyyy"
    assert prepared.path_on_datastore == f"azureml/{prep.id}/prepared"  # datastore-relative, as in v1
    recorded = prep._record.data["outputs"]["prepared"]
    assert recorded["files"] == 2 and recorded["size"] == 15 and recorded["mode"] == "mount"
    model = step_run(run, "train").get_output("model").get_port_data_reference()
    assert (Path(model.local_path) / "model.txt").read_text() == "xxxxxxxxxx lr=0.1"
    copied = model.download(str(tmp_path / "download"))
    assert (Path(copied) / "model.txt").read_text() == "xxxxxxxxxx lr=0.1"
    assert step_run(run, "evaluate").get_outputs() == {}
    with pytest.raises(Exception, match="has no output 'nope'"):
        prep.get_output_data("nope")


def test_get_graph_is_the_graph_the_run_executed(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    pipeline = three_steps(sqlite_workspace, tmp_path)
    run = pipeline.submit("pipe-graph", show_output=False, pipeline_parameters={"lr": 0.3})
    graph = run.get_graph()
    assert graph["description"] == "three steps"
    assert [s["name"] for s in graph["steps"]] == ["prep", "train", "evaluate"]
    by_name = {s["name"]: s for s in graph["steps"]}
    assert by_name["evaluate"]["inputs"] == [
        {"name": "model", "step": "train", "output": "model", "mode": "mount"}
    ]
    assert len(by_name["prep"]["source"]["snapshot"]) == 64  # content-addressed snapshot id
    assert run.get_parameters() == {"lr": 0.3}
    run.wait_for_completion(show_output=False)
    assert "lr=0.3" in step_run(run, "train").get_job_log()


def test_wait_for_completion_streams_each_steps_log_prefixed_by_its_name(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = three_steps(workspace, tmp_path).submit("pipe-stream")
    assert run.wait_for_completion(show_output=True) == "Finished"
    out = capsys.readouterr().out
    assert f"Submitted PipelineRun {run.id}" in out
    assert f"PipelineRunId: {run.id}" in out
    lines = out.splitlines()
    assert "[prep] hello from prep" in lines
    assert "[train] hello from train lr=0.1 env=fast" in lines
    assert "[evaluate] hello from evaluate xxxxxxxxxx lr=0.1" in lines
    assert lines.index("[prep] hello from prep") < lines.index("[train] hello from train lr=0.1 env=fast")
    assert f"PipelineRun {run.id} Status: Finished" in out


def test_mount_outputs_exist_before_the_script_and_are_written_in_place(
    workspace: Workspace, tmp_path: Path
) -> None:
    writer = folder(
        tmp_path,
        "writer",
        {
            "write.py": """
                import os, sys
                out = sys.argv[1]
                env = os.environ["AZUREML_DATAREFERENCE_direct"]
                print("EXISTS", os.path.isdir(out), os.listdir(out), "SAME", env == out)
                print("WROTE", out)
                with open(os.path.join(out, "result.txt"), "w") as fh:  # no makedirs: runyard made it
                    fh.write("done")
            """
        },
    )
    direct = OutputFileDatasetConfig("direct").as_mount()
    step = PythonScriptStep("write.py", name="writer", arguments=[direct], source_directory=writer)
    run = Pipeline(workspace, [step]).submit("pipe-mount", show_output=False)
    assert run.wait_for_completion(show_output=False) == "Finished"
    log = step_run(run, "writer").get_job_log()
    assert "EXISTS True [] SAME True" in log
    written_to = log.split("WROTE ")[1].splitlines()[0]
    recorded = step_run(run, "writer").get_output_data("direct")
    assert written_to == recorded.local_path  # mount mode: no scratch copy, the datastore folder itself
    assert (Path(written_to) / "result.txt").read_text() == "done"


UPLOAD_WRITER = """
    import sys, pathlib
    out = pathlib.Path(sys.argv[1])
    print("WROTE", out)
    (out / "part-0.txt").write_text("first half")
    if sys.argv[2] == "fail":
        raise SystemExit("failing after writing part of the output")
    (out / "part-1.txt").write_text("second half")
"""
READER = """
    import os, sys
    print("READ", sorted(os.listdir(sys.argv[1])))
"""


def upload_pipeline(ws: Workspace, tmp_path: Path, mode: str, destination: str | None = None) -> Pipeline:
    result = OutputFileDatasetConfig(
        "result", destination=("workspaceblobstore", destination) if destination else None
    ).as_upload(overwrite=True)
    writer = PythonScriptStep(
        "write.py",
        name="writer",
        arguments=[result, mode],
        source_directory=folder(tmp_path, "writer", {"write.py": UPLOAD_WRITER}),
        allow_reuse=False,
    )
    reader = PythonScriptStep(
        "read.py",
        name="reader",
        arguments=[result.as_input()],
        source_directory=folder(tmp_path, "reader", {"read.py": READER}),
        allow_reuse=False,
    )
    return Pipeline(ws, [writer, reader])


def test_upload_output_is_published_when_the_step_succeeds(workspace: Workspace, tmp_path: Path) -> None:
    run = upload_pipeline(workspace, tmp_path, "ok").submit("pipe-upload", show_output=False)
    assert run.wait_for_completion(show_output=False) == "Finished"
    writer = step_run(run, "writer")
    written_to = writer.get_job_log().split("WROTE ")[1].splitlines()[0]
    final = Path(writer.get_output_data("result").local_path)
    assert Path(written_to) != final  # the script wrote to local scratch ...
    assert not Path(written_to).exists()  # ... which was moved into place
    assert sorted(p.name for p in final.iterdir()) == ["part-0.txt", "part-1.txt"]
    assert writer.get_output_data("result").file_count == 2
    assert "READ ['part-0.txt', 'part-1.txt']" in step_run(run, "reader").get_job_log()
    assert f"Published output 'result' to {final}" in writer.read_log("azureml-logs/75_job_post.txt").decode()


def test_a_failed_upload_step_publishes_nothing_and_its_reader_is_canceled(
    workspace: Workspace, tmp_path: Path
) -> None:
    run = upload_pipeline(workspace, tmp_path, "fail").submit("pipe-upload-fail", show_output=False)
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    writer, reader = step_run(run, "writer"), step_run(run, "reader")
    assert writer.get_status() == "Failed"
    assert "failing after writing part of the output" in writer._record.data["error"]["message"]
    final = workspace.artifacts.local_path(f"datastores/workspaceblobstore/azureml/{writer.id}/result")
    assert not final.exists()  # nothing half-written at the final location
    assert writer.get_outputs() == {}
    post = writer.read_log("azureml-logs/75_job_post.txt").decode()
    assert "Output 'result' not published (step did not succeed)" in post
    assert reader.get_status() == "Canceled"
    assert reader._record.data["error"]["message"] == "Not run: upstream step 'writer' ended Failed."
    assert reader.get_job_log() == ""  # it never started


def test_a_failed_upload_leaves_the_previous_output_at_a_fixed_destination_intact(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    final = sqlite_workspace.artifacts.local_path("datastores/workspaceblobstore/fixed/result")
    ok = upload_pipeline(sqlite_workspace, tmp_path, "ok", "fixed/result").submit("fixed", show_output=False)
    assert ok.wait_for_completion(show_output=False) == "Finished"
    before = {p.name: p.read_text() for p in final.iterdir()}
    assert before == {"part-0.txt": "first half", "part-1.txt": "second half"}
    # the second run writes part-0.txt again (same name!) and then fails
    failing = upload_pipeline(sqlite_workspace, tmp_path, "fail", "fixed/result")
    bad = failing.submit("fixed", show_output=False)
    assert bad.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    assert {p.name: p.read_text() for p in final.iterdir()} == before
    assert step_run(bad, "reader").get_status() == "Canceled"


def wait_for_file(path: Path) -> str:
    """A script that blocks until the test creates `path`: steps end in the order the test chooses."""
    return (
        f"import os, time\nfor _ in range(600):\n    if os.path.exists({str(path)!r}):\n        break\n"
        "    time.sleep(0.05)\n"
    )


def failure_pipeline(ws: Workspace, tmp_path: Path) -> Pipeline:
    """root → bad (fails) → after_bad;  root → slow (ends once tmp_path/release exists) → after_slow."""
    src = {
        "ok.py": "print('ok')\n",
        "bad.py": "raise RuntimeError('bad step broke')\n",
        "slow.py": wait_for_file(tmp_path / "release") + "print('slow done')\n",
    }
    steps = {}
    for name, script in [
        ("root", "ok.py"),
        ("bad", "bad.py"),
        ("after_bad", "ok.py"),
        ("slow", "slow.py"),
        ("after_slow", "ok.py"),
    ]:
        steps[name] = PythonScriptStep(
            script, name=name, source_directory=folder(tmp_path, name, src), allow_reuse=False
        )
    steps["bad"].run_after(steps["root"])
    steps["slow"].run_after(steps["root"])
    steps["after_bad"].run_after(steps["bad"])
    steps["after_slow"].run_after(steps["slow"])
    return Pipeline(ws, list(steps.values()))


def test_a_failed_step_cancels_the_rest_and_fails_the_pipeline(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "4")
    run = failure_pipeline(workspace, tmp_path).submit("pipe-fail", show_output=False)
    wait_for(lambda: statuses(run)["bad"] == RunStatus.FAILED, timeout=60)
    assert statuses(run)["slow"] == RunStatus.RUNNING
    (tmp_path / "release").touch()
    with pytest.raises(RunFailedError, match="bad step broke"):
        run.wait_for_completion(show_output=False)
    assert run.get_status() == "Failed"
    assert statuses(run) == {
        "root": "Completed",
        "bad": "Failed",
        "slow": "Completed",  # it was already running: it is let finish
        "after_bad": "Canceled",
        "after_slow": "Canceled",  # independent, but continue_on_step_failure is False
    }
    assert step_run(run, "after_bad")._record.data["error"]["message"] == (
        "Not run: upstream step 'bad' ended Failed."
    )
    assert step_run(run, "after_slow")._record.data["error"]["message"] == (
        "Not run: another step failed and continue_on_step_failure is False."
    )
    bad = step_run(run, "bad")
    assert "RuntimeError: bad step broke" in bad._record.data["error"]["message"]
    assert bad.get_details()["error"]["exitCode"] == 1


def test_continue_on_step_failure_runs_independent_branches(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "4")
    run = failure_pipeline(workspace, tmp_path).submit(
        "pipe-continue", continue_on_step_failure=True, show_output=False
    )
    wait_for(lambda: statuses(run)["bad"] == RunStatus.FAILED, timeout=60)
    (tmp_path / "release").touch()
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    assert statuses(run) == {
        "root": "Completed",
        "bad": "Failed",
        "slow": "Completed",
        "after_bad": "Canceled",  # it depends on the failed step: never run
        "after_slow": "Completed",  # independent branch goes on
    }
    assert step_run(run, "after_slow")._record.start_time > step_run(run, "bad")._record.end_time  # type: ignore[operator]


SLEEPER = """
    import sys, time
    print("started", flush=True)
    time.sleep(float(sys.argv[1]))
    print("woke up")
"""


def test_cancel_stops_running_steps_and_ends_canceled(workspace: Workspace, tmp_path: Path) -> None:
    src = folder(tmp_path, "sleep", {"sleep.py": SLEEPER})
    long = PythonScriptStep("sleep.py", name="long", arguments=[60], source_directory=src, allow_reuse=False)
    after = PythonScriptStep(
        "sleep.py",
        name="after",
        arguments=[0],
        source_directory=folder(tmp_path, "after", {"sleep.py": SLEEPER}),
    )
    after.run_after(long)
    run = Pipeline(workspace, [long, after]).submit("pipe-cancel", show_output=False)
    long_run = wait_for(lambda: run.find_step_run("long")[0], timeout=10)
    wait_for(lambda: "started" in long_run.get_job_log(), timeout=30)
    # the scheduler records the process just after starting it: a fast script can print first
    process = wait_for(lambda: long_run._refresh().data.get("process"), timeout=10)
    pid = int(process["pid"])
    assert alive(pid)
    started = time.monotonic()
    run.cancel()
    assert run.wait_for_completion(show_output=False, timeout_seconds=30) == "Canceled"
    assert time.monotonic() - started < 15
    assert statuses(run) == {"long": "Canceled", "after": "Canceled"}
    assert step_run(run, "long").get_status() == "Canceled"
    assert "woke up" not in step_run(run, "long").get_job_log()
    wait_for(lambda: not alive(pid), timeout=10)


def test_cancel_right_after_submit_cancels_every_step(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    ws = sqlite_workspace
    busy = PythonScriptStep(
        "sleep.py",
        name="busy",
        arguments=[4],
        source_directory=folder(tmp_path, "busy", {"sleep.py": SLEEPER}),
        allow_reuse=False,
    )
    first = Pipeline(ws, [busy]).submit("pipe-busy", show_output=False)
    wait_for(lambda: first._refresh().status == RunStatus.RUNNING, timeout=30)  # a scheduler runs now
    src = folder(tmp_path, "quick", {"sleep.py": SLEEPER})
    a = PythonScriptStep("sleep.py", name="a", arguments=[0], source_directory=src, allow_reuse=False)
    b = PythonScriptStep(
        "sleep.py", name="b", arguments=[0], source_directory=folder(tmp_path, "b", {"sleep.py": SLEEPER})
    )
    b.run_after(a)
    run = Pipeline(ws, [a, b]).submit("pipe-cancel-early", show_output=False)
    run.cancel()
    assert run.wait_for_completion(show_output=False, timeout_seconds=30) == "Canceled"
    wait_for(lambda: set(statuses(run).values()) == {"Canceled"}, timeout=10)
    assert first.wait_for_completion(show_output=False) == "Finished"  # the other pipeline is untouched


def test_steps_beyond_the_local_slots_wait_queued(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "1")
    root = PythonScriptStep(
        "sleep.py",
        name="root",
        arguments=[0],
        source_directory=folder(tmp_path, "root", {"sleep.py": SLEEPER}),
        allow_reuse=False,
    )
    fan = []
    for name in ("f1", "f2", "f3"):
        s = PythonScriptStep(
            "sleep.py",
            name=name,
            arguments=[0.5],
            source_directory=folder(tmp_path, name, {"sleep.py": SLEEPER}),
            allow_reuse=False,
        )
        s.run_after(root)
        fan.append(s)
    run = Pipeline(sqlite_workspace, [root, *fan]).submit("pipe-slots", show_output=False)
    seen: dict[str, set[str]] = {}
    v1_words: set[str] = set()
    while run._refresh().status not in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED):
        for name, status in statuses(run).items():
            seen.setdefault(name, set()).add(status)
            if status == RunStatus.QUEUED:
                v1_words.add(step_run(run, name).get_status())
                queued = step_run(run, name)._record.data
                assert queued.get("queuedBecause") == "all local slots busy"
        time.sleep(0.03)
    assert run.get_status() == "Finished"
    assert sum("Queued" in seen.get(n, set()) for n in ("f1", "f2", "f3")) >= 2
    assert "Queued" in v1_words  # StepRun.get_status() says Queued in v1's words too
    records = sorted(
        run.workspace.store.list_descendants(run.id, recursive=False), key=lambda r: r.start_time or 0
    )
    for before, after in itertools.pairwise(records):  # one slot: never two at once
        assert after.start_time >= before.end_time, (before.display_name, after.display_name)  # type: ignore[operator]


def test_independent_steps_run_at_the_same_time_when_slots_allow(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step waits until all three have started: this only finishes if they truly run at once."""
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "3")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = f"""
        import os, sys, time, pathlib
        barrier = pathlib.Path({str(barrier)!r})
        (barrier / sys.argv[1]).touch()
        deadline = time.time() + 20
        while len(os.listdir(barrier)) < 3:
            if time.time() > deadline:
                raise SystemExit("the other steps never started")
            time.sleep(0.02)
    """
    steps = [
        PythonScriptStep(
            "meet.py", name=n, arguments=[n], source_directory=folder(tmp_path, n, {"meet.py": script})
        )
        for n in ("x", "y", "z")
    ]
    run = Pipeline(sqlite_workspace, steps).submit("pipe-parallel", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert sorted(os.listdir(barrier)) == ["x", "y", "z"]


def test_the_scheduler_runs_in_the_background_and_exits_when_idle(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    src = folder(tmp_path, "one", {"one.py": "print('one')\n"})
    run = Pipeline(ws, [PythonScriptStep("one.py", name="one", source_directory=src)]).submit(
        "pipe-idle", show_output=False
    )
    info = wait_for(lambda: (service_info(ws) or {}).get("pid") and service_info(ws), timeout=10)
    assert info["pid"] != os.getpid()
    header = f"runyard scheduler for {ws.path} (pid {info['pid']}, {os.cpu_count()} local slots)"
    assert wait_for(
        lambda: header in (ws.path / "scheduler.log").read_text(), timeout=10
    )  # default: CPU count
    assert run.wait_for_completion(show_output=False) == "Finished"
    wait_for(lambda: service_info(ws) is None, timeout=15)  # RUNYARD_SCHEDULER_IDLE_SECONDS=3
    log = (ws.path / "scheduler.log").read_text()
    assert f"pipeline {run.id}: Completed" in log
    assert log.rstrip().endswith("idle; exiting")


def test_clone_resubmits_from_the_runs_snapshot(workspace: Workspace, tmp_path: Path) -> None:
    pipeline = three_steps(workspace, tmp_path)
    first = pipeline.submit("pipe-clone", show_output=False)
    first.wait_for_completion(show_output=False)
    # edit the source folder afterwards: a clone runs the files the first run stored, not these
    (tmp_path / "steps" / "train" / "train.py").write_text("raise SystemExit('edited after the run')\n")
    draft = first.clone()
    assert isinstance(draft, Pipeline)
    assert draft.validate() == []
    assert draft.validate(pipeline_parameters={"nope": 1}) == [
        "pipeline_parameters names 'nope', but this pipeline has no such parameter (known: lr)."
    ]
    again = draft.submit("pipe-clone", pipeline_parameters={"lr": 0.5}, show_output=False)
    assert again.wait_for_completion(show_output=False) == "Finished"
    assert again.get_parameters() == {"lr": 0.5}
    assert again.get_graph()["steps"] == first.get_graph()["steps"]
    assert "hello from train lr=0.5" in step_run(again, "train").get_job_log()
    assert step_run(again, "prep")._reused_run_id == step_run(first, "prep").id
    assert not any(
        r.status in ACTIVE_STATUSES for r in workspace.store.list_descendants(again.id, recursive=False)
    )


def test_queued_steps_do_not_start_after_a_failure(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slot, root → (bad, q1, q2): q1 and q2 wait Queued while bad runs and fails; they must not run."""
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "1")
    files = {
        "sleep.py": "print('ran')\n",
        "bad.py": wait_for_file(tmp_path / "release") + "raise SystemExit('bad')\n",
    }
    root, bad, *queued = (
        PythonScriptStep(
            "bad.py" if n == "bad" else "sleep.py",
            name=n,
            arguments=[n],
            source_directory=folder(tmp_path, n, files),
            allow_reuse=False,
        )
        for n in ("root", "bad", "q1", "q2")
    )
    for s in (bad, *queued):
        s.run_after(root)
    run = Pipeline(sqlite_workspace, [root, bad, *queued]).submit("pipe-queued-fail", show_output=False)
    wait_for(lambda: statuses(run)["q1"] == RunStatus.QUEUED, timeout=30)
    (tmp_path / "release").touch()  # now bad fails, with q1 and q2 still waiting for its slot
    assert run.wait_for_completion(show_output=False, raise_on_error=False, timeout_seconds=60) == "Failed"
    assert statuses(run) == {"root": "Completed", "bad": "Failed", "q1": "Canceled", "q2": "Canceled"}
    assert step_run(run, "q1").get_job_log() == ""  # never started


def test_an_upload_to_a_destination_that_holds_files_fails_without_overwrite(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    final = sqlite_workspace.artifacts.local_path("datastores/workspaceblobstore/kept/result")

    def submit() -> PipelineRun:
        result = OutputFileDatasetConfig(
            "result", destination=("workspaceblobstore", "kept/result")
        ).as_upload()
        src = folder(tmp_path, "writer", {"write.py": UPLOAD_WRITER})
        step = PythonScriptStep("write.py", name="writer", arguments=[result, "ok"], source_directory=src)
        return Pipeline(sqlite_workspace, [step]).submit(
            "pipe-kept", regenerate_outputs=True, show_output=False
        )

    assert submit().wait_for_completion(show_output=False) == "Finished"
    (final / "part-1.txt").write_text("edited by hand")
    second = submit()
    assert second.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    error = step_run(second, "writer")._record.data["error"]
    assert error["code"] == "OutputError"
    assert "already holds files" in error["message"] and "overwrite=True" in error["message"]
    assert (final / "part-1.txt").read_text() == "edited by hand"  # the existing output was not touched


def test_upload_outputs_publish_to_an_artifact_root_on_another_filesystem(tmp_path: Path) -> None:
    """A rename cannot cross filesystems: the output is staged beside its destination, then renamed."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the test's tmp_path")
    root = shm / f"runyard-test-{os.getpid()}-{tmp_path.name}"
    try:
        ws = Workspace.create(tmp_path / "ws" / ".runyard", artifact_root=str(root))
        run = upload_pipeline(ws, tmp_path, "ok").submit("pipe-xdev", show_output=False)
        assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
        final = Path(step_run(run, "writer").get_output_data("result").local_path)
        assert final.is_relative_to(root)
        assert sorted(p.name for p in final.iterdir()) == ["part-0.txt", "part-1.txt"]
        assert [p.name for p in final.parent.iterdir()] == ["result"]  # no staging folder left behind
        assert "READ ['part-0.txt', 'part-1.txt']" in step_run(run, "reader").get_job_log()
    finally:
        shutil.rmtree(root, ignore_errors=True)

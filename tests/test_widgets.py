"""RunDetails outside a notebook: the snapshot it draws (a script run with metrics, a pipeline with a
reused step, a failed run) and the text summary a v1 script gets from show().

One module-scoped SQLite workspace holds all the runs, submitted together so their processes overlap.
The notebook and JupyterLab tests (test_widget_notebook.py, test_widget_jupyterlab.py) show the widget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir, clean_settings, insert_pipeline, kill_strays
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.errors import InvalidInputError, NotFoundError
from runyard.parallel.progress import PROGRESS_FILE, MiniBatchCounts, ProgressSnapshot, describe
from runyard.pipeline import Pipeline, PipelineData, PipelineRun, PythonScriptStep
from runyard.status import RunStatus
from runyard.widgets import ParallelRunStepDetails, RunDetails
from runyard.widgets.snapshot import change_marker, collect
from runyard.widgets.view import STUDIO_CSS, RunDetailsView, plotly_source, widget_css

TRAIN = """
from runyard import Run
run = Run.get_context()
for step, loss in enumerate([0.9, 0.5, 0.25]):
    run.log("loss", loss, step=step * 10)
run.log("accuracy", 0.75)
run.log_list("sizes", [3, 4, 5])
run.log_row("per_class", label="cat", recall=0.5)
run.log_row("per_class", label="dog", recall=0.75)
run.log_table("table", {"x": [1, 2], "y": ["a", "b"]})
for i in range(120):
    print(f"line {i}")
print("training done")
"""
FAIL = """
print("about to fail")
raise SystemExit("the data folder is empty")
"""
PREP = """
import pathlib, sys
pathlib.Path(sys.argv[1], "data.txt").write_text("1 2 3")
print("prep wrote data")
"""
USE = """
import sys
print("use read", open(sys.argv[1] + "/data.txt").read())
"""


class Runs:
    def __init__(
        self, ws: Workspace, script: Run, failed: Run, first: PipelineRun, second: PipelineRun
    ) -> None:
        self.ws, self.script, self.failed, self.first, self.second = ws, script, failed, first, second


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, env_cache: Path) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("widgets")
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_settings(monkeypatch, env_cache)
        monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "3")
        ws = Workspace.create(root / "ws" / ".runyard")
        src = SourceDir(root / "script").gen({"train.py": TRAIN, "fail.py": FAIL})
        prep_dir = SourceDir(root / "prep").gen({"prep.py": PREP})
        use_dir = SourceDir(root / "use").gen({"use.py": USE})
        exp = Experiment(ws, "widget-tests")
        script = exp.submit(ScriptRunConfig(src, "train.py"))
        failed = exp.submit(ScriptRunConfig(src, "fail.py"))

        def pipeline() -> Pipeline:
            data = PipelineData("data")
            prep = PythonScriptStep(
                "prep.py", name="prep", arguments=[data], outputs=[data], source_directory=prep_dir
            )
            use = PythonScriptStep(
                "use.py",
                name="use",
                arguments=[data],
                inputs=[data],
                source_directory=use_dir,
                allow_reuse=False,
            )
            return Pipeline(ws, [prep, use])

        first = exp.submit(pipeline())
        first.wait_for_completion(show_output=False)
        second = exp.submit(pipeline())  # prep is reused, use reruns
        for run in (script, failed, second):
            run.wait_for_completion(raise_on_error=False)
        yield Runs(ws, script, failed, first, second)  # type: ignore[arg-type]
    kill_strays(root)


def by_name(metrics: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in metrics}


def test_a_script_run_shows_its_metrics_as_lines_values_and_tables(runs: Runs) -> None:
    data = RunDetails(runs.script).get_widget_data({"debug": True})
    assert data["status"] == "Completed" and data["run_id"] == runs.script.id
    assert data["workbench_run_details_uri"] == runs.script.get_portal_url()
    assert data["run_properties"]["active"] is False and data["run_properties"]["duration"] != "—"
    assert data["widget_settings"] == {"debug": True}
    metrics = by_name(data["run_metrics"])
    assert metrics["loss"] == {
        "name": "loss",
        "kind": "line",
        "categories": [0, 10, 20],
        "series": [{"data": [0.9, 0.5, 0.25]}],
    }
    assert metrics["accuracy"] == {"name": "accuracy", "kind": "value", "value": 0.75}
    assert metrics["sizes"]["kind"] == "table" and metrics["sizes"]["rows"] == [[3], [4], [5]]
    assert metrics["per_class"]["columns"] == ["label", "recall"]
    assert metrics["per_class"]["rows"] == [["cat", 0.5], ["dog", 0.75]]
    assert metrics["table"]["rows"] == [[1, "a"], [2, "b"]]
    logs = data["run_logs"]
    assert logs["run_id"] == runs.script.id and logs["name"] == "azureml-logs/70_driver_log.txt"
    lines = logs["text"].splitlines()
    assert "training done" in lines and "line 0" not in lines  # the tail, not the whole log
    assert data["graph"] == {} and data["child_runs"] == []


def test_a_pipeline_run_shows_its_graph_with_reuse_and_its_steps(runs: Runs) -> None:
    data = RunDetails(runs.second).get_widget_data()
    assert data["status"] == "Completed"
    steps = {c["name"]: c for c in data["child_runs"]}
    assert steps["prep"]["status"] == "Reused"
    assert steps["prep"]["reused_from"] == runs.first.find_step_run("prep")[0].id
    assert steps["use"]["status"] == "Completed" and steps["use"]["reused_from"] is None
    nodes = {n["name"]: n for n in data["graph"]["nodes"]}
    assert nodes["prep"]["status"] == "Reused" and nodes["use"]["status"] == "Completed"
    assert nodes["prep"]["x"] < nodes["use"]["x"]  # the studio's layout: data flows left to right
    assert [e["label"] for e in data["graph"]["edges"]] == ["data"]
    # nobody clicked: the log of the step that ran last; a click on prep shows prep's
    assert data["run_logs"]["run_id"] == steps["use"]["run_id"]
    assert "use read 1 2 3" in data["run_logs"]["text"]
    assert set(data["logs_by_run"]) == {runs.second.id, steps["prep"]["run_id"], steps["use"]["run_id"]}
    assert data["logs_by_run"][steps["use"]["run_id"]] == data["run_logs"]
    clicked = collect(runs.second, selected=steps["prep"]["run_id"])["run_logs"]  # prep ran nothing here:
    assert clicked["run_id"] == steps["prep"]["run_id"]  # its log is the one of the run it reused
    assert clicked["reused_from"] == steps["prep"]["reused_from"] and "prep wrote data" in clicked["text"]


def test_a_failed_run_shows_its_error_and_log(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    data = RunDetails(runs.failed).get_widget_data()
    assert data["status"] == "Failed"
    assert "the data folder is empty" in (data["run_properties"]["error"] or "")
    assert "about to fail" in data["run_logs"]["text"]
    RunDetails(runs.failed).show()  # outside a notebook: the text summary
    out = capsys.readouterr().out
    assert "Status: Failed" in out and "the data folder is empty" in out and "about to fail" in out
    assert runs.failed.get_portal_url() in out


def test_show_outside_a_notebook_prints_one_screen(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    RunDetails(runs.script).show()
    out = capsys.readouterr().out
    assert f"Studio: {runs.script.get_portal_url()}" in out and "Status: Completed" in out
    assert "loss: 0.25 (last of 3)" in out and "accuracy: 0.75" in out
    assert "per_class: table, 2 row(s) x 2 column(s)" in out
    assert "training done" in out and "line 100" not in out
    assert len(out.splitlines()) < 40
    RunDetails(runs.second).show()
    out = capsys.readouterr().out
    assert "Steps:" in out and "prep" in out and "Reused" in out and "use read 1 2 3" in out
    shown: list[str] = []
    RunDetails(runs.script).show(render_lib=shown.append)  # v1's displayHTML hook gets HTML
    assert shown[0].startswith("<pre>") and "training done" in shown[0]


def test_parallel_run_step_details_finds_the_step_as_v1_does(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    use_id = runs.second.find_step_run("use")[0].id
    assert ParallelRunStepDetails(runs.second, "use").step_run.id == use_id
    assert (
        ParallelRunStepDetails(workspace=runs.ws, run_id=runs.second.id, step_name="use").step_run.id
        == use_id
    )
    assert ParallelRunStepDetails(workspace=runs.ws, step_run_id=use_id).step_run.id == use_id
    with pytest.raises(InvalidInputError, match=r"run_instance \+ step_name"):
        ParallelRunStepDetails(step_name="use")
    with pytest.raises(NotFoundError, match=r"no step named 'score'.*'prep', 'use'"):
        ParallelRunStepDetails(runs.second, "score")
    ParallelRunStepDetails(runs.second, "use").show()
    assert "use read 1 2 3" in capsys.readouterr().out


def test_the_widget_uses_the_studio_colours_and_the_installed_plotly() -> None:
    css = widget_css()
    ok = next(line for line in STUDIO_CSS.read_text().splitlines() if "--ok:" in line)
    colour = ok.split("--ok:")[1].split(";")[0].strip()
    assert f"--ok: {colour}" in css  # read from the studio's stylesheet, not copied
    assert ".runyard-rd svg.graph .st-reused .bar" in css
    assert plotly_source().lstrip().startswith("/**") and "plotly.js" in plotly_source()[:200]
    view, other = RunDetailsView(), RunDetailsView()
    assert view._css == css and view.plotly is not None and view.plotly.plotly_js == plotly_source()
    assert other.plotly is view.plotly  # one plotly.js model per kernel session, referenced by each widget
    assert view.get_state()["plotly"] == f"IPY_MODEL_{view.plotly.model_id}"
    assert "plotly_js" not in view.get_state()  # a widget's own state stays small
    view.plotly.close()
    assert RunDetailsView().plotly is not view.plotly  # a closed model is made again


def test_a_parallel_step_shows_its_progress(
    sqlite_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """The driver's progress file (parallel/progress.py) in the graph node and above the step's log."""
    ws = sqlite_workspace
    graph = {
        "steps": [{"name": "score", "inputs": [], "run_after": [], "parallel": {"mini_batch_size": "1"}}]
    }
    pipeline_id = insert_pipeline(ws, {"graph": graph}, ["score"])
    step = ws.store.list_descendants(pipeline_id, recursive=False)[0]
    ws.store.set_run_status(step.run_id, RunStatus.RUNNING)
    snap = ProgressSnapshot(step="score", mini_batches=MiniBatchCounts(total=10, completed=3, failed=1))
    ws.artifacts.put_bytes(f"runs/{step.run_id}/{PROGRESS_FILE}", snap.model_dump_json().encode())

    data = RunDetails(Run.get(ws, pipeline_id)).get_widget_data()
    assert data["graph"]["nodes"][0]["detail"] == "4/10"
    assert data["run_logs"]["run_id"] == step.run_id  # the running step is the one shown
    assert data["run_logs"]["progress"] == describe(snap) and data["run_logs"]["progress_fraction"] == 0.4
    pipeline = Run.get(ws, pipeline_id)
    before = change_marker(pipeline, None)
    assert change_marker(pipeline, None) == before  # nothing moved: the poller sends nothing
    snap.mini_batches.completed = 5  # same size on disk, new content: the poller must still see it
    ws.artifacts.put_bytes(f"runs/{step.run_id}/{PROGRESS_FILE}", snap.model_dump_json().encode())
    assert change_marker(pipeline, None) != before
    ParallelRunStepDetails(workspace=ws, run_id=pipeline_id, step_name="score").show()
    assert f"Progress: {describe(snap)}" in capsys.readouterr().out

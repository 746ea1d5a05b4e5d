"""Pipeline.validate() and submit(): every rule of the issue, each with the sentence a user reads.

Validation runs before anything is stored or started, so most of these tests need no scheduler.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.engine.service import service_info
from runyard.errors import InvalidInputError
from runyard.pipeline import (
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    StepSequence,
)

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def folder(tmp_path: Path, name: str, scripts: tuple[str, ...] = ("main.py",)) -> SourceDir:
    return SourceDir(tmp_path / name).gen({s: "print('hi')\n" for s in scripts})


def step(tmp_path: Path, name: str, **kwargs: object) -> PythonScriptStep:
    """A step with its own source folder holding main.py."""
    kwargs.setdefault("source_directory", folder(tmp_path, name))
    return PythonScriptStep("main.py", name=name, **kwargs)  # type: ignore[arg-type]


def only_error(pipeline: Pipeline, **kwargs: object) -> str:
    errors = pipeline.validate(**kwargs)  # type: ignore[arg-type]
    assert len(errors) == 1, errors
    return errors[0]


def test_a_correct_pipeline_validates_clean(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    data = PipelineData("prepared")
    lr = PipelineParameter("lr", 0.1)
    prep = step(tmp_path, "prep", arguments=["--out", data], outputs=[data])
    train = step(tmp_path, "train", arguments=["--data", data, "--lr", lr], inputs=[data])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # each step has its own folder: no shared-folder warning either
        assert Pipeline(sqlite_workspace, [prep, train]).validate() == []
    graph = Pipeline(sqlite_workspace, [prep, train]).graph
    json.dumps(graph)  # the graph is plain JSON
    by_name = {s["name"]: s for s in graph["steps"]}
    assert by_name["train"]["inputs"] == [
        {"name": "prepared", "step": "prep", "output": "prepared", "mode": "mount"}
    ]
    assert by_name["train"]["arguments"] == [
        {"literal": "--data"},
        {"input": "prepared"},
        {"literal": "--lr"},
        {"param": "lr"},
    ]
    assert graph["parameters"] == {"lr": {"default": 0.1}}


def test_a_cycle_through_data_is_reported(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    first, second = PipelineData("first"), PipelineData("second")
    a = step(tmp_path, "a", arguments=[second, first], inputs=[second], outputs=[first])
    b = step(tmp_path, "b", arguments=[first, second], inputs=[first], outputs=[second])
    error = only_error(Pipeline(sqlite_workspace, [a, b]))
    assert "form a cycle" in error
    assert "(a → b → a)" in error or "(b → a → b)" in error


def test_a_cycle_through_run_after_is_reported(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    a, b, c = step(tmp_path, "a"), step(tmp_path, "b"), step(tmp_path, "c")
    b.run_after(a)
    c.run_after(b)
    a.run_after(c)
    error = only_error(Pipeline(sqlite_workspace, [a, b, c]))
    assert "form a cycle" in error
    assert all(name in error for name in "abc")


def test_two_steps_with_one_name(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    one = step(tmp_path, "train")
    two = PythonScriptStep("main.py", name="train", source_directory=folder(tmp_path, "other"))
    error = only_error(Pipeline(sqlite_workspace, [one, two]))
    assert error == "Two steps are named 'train'; give each step a unique name=."


def test_an_input_that_no_step_produces(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    orphan = PipelineData("orphan")  # never in anybody's outputs=[...]
    reader = step(tmp_path, "reader", arguments=["--data", orphan], inputs=[orphan])
    error = only_error(Pipeline(sqlite_workspace, [reader]))
    assert error.startswith("Step 'reader' reads 'orphan', but no step in the pipeline produces it.")
    assert "outputs=[...]" in error


def test_resolve_closure_pulls_in_the_producer_and_false_does_not(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    data = OutputFileDatasetConfig("prepared")
    prep = step(tmp_path, "prep", arguments=["--out", data])
    train = step(tmp_path, "train", arguments=["--data", data.as_input()])
    closed = Pipeline(sqlite_workspace, [train])  # resolve_closure=True is v1's default
    assert closed.validate() == []
    assert sorted(s["name"] for s in closed.graph["steps"]) == ["prep", "train"]
    error = only_error(Pipeline(sqlite_workspace, [train], resolve_closure=False))
    assert "Step 'train' reads 'prepared', but no step in the pipeline produces it" in error
    assert Pipeline(sqlite_workspace, [prep, train], resolve_closure=False).validate() == []


def test_a_parameter_without_a_value(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    lr = PipelineParameter("lr", None)
    pipeline = Pipeline(sqlite_workspace, [step(tmp_path, "train", arguments=["--lr", lr])])
    error = only_error(pipeline)
    assert error.startswith("PipelineParameter 'lr' has no value")
    assert "pipeline_parameters={'lr': ...}" in error
    assert pipeline.validate(pipeline_parameters={"lr": 0.2}) == []  # a value at submit is enough


def test_parameters_the_pipeline_does_not_have(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    lr = PipelineParameter("lr", 0.1)
    pipeline = Pipeline(sqlite_workspace, [step(tmp_path, "train", params={"lr": lr})])
    error = only_error(pipeline, pipeline_parameters={"learning_rate": 0.2})
    assert "names 'learning_rate', but no step uses a PipelineParameter of that name (known: lr)" in error


def test_one_parameter_name_with_two_defaults(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    a = step(tmp_path, "a", arguments=[PipelineParameter("lr", 0.1)])
    b = step(tmp_path, "b", arguments=[PipelineParameter("lr", 0.5)])
    error = only_error(Pipeline(sqlite_workspace, [a, b]))
    assert "Two PipelineParameters are named 'lr' with different defaults (0.1 and 0.5)" in error


def test_a_script_that_does_not_exist(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    src = folder(tmp_path, "train", ("train.py",))
    missing = PythonScriptStep("trian.py", name="train", source_directory=src)
    error = only_error(Pipeline(sqlite_workspace, [missing]))
    assert error == (
        f"Step 'train': script 'trian.py' does not exist in source_directory {src.path.resolve()}; "
        "check script_name and source_directory."
    )


def test_a_source_directory_that_does_not_exist_or_a_script_outside_it(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    gone = PythonScriptStep("main.py", name="gone", source_directory=tmp_path / "nowhere")
    assert "source_directory" in only_error(Pipeline(sqlite_workspace, [gone]))
    assert "is not a folder" in only_error(Pipeline(sqlite_workspace, [gone]))
    folder(tmp_path, "outside")  # tmp_path/outside/main.py exists, but not inside the step's folder
    escape = PythonScriptStep("../outside/main.py", name="escape", source_directory=folder(tmp_path, "own"))
    assert "lies outside its source_directory" in only_error(Pipeline(sqlite_workspace, [escape]))


def test_two_steps_sharing_a_source_directory_warn_with_the_cost(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    shared = folder(tmp_path, "shared", ("prep.py", "train.py"))
    prep = PythonScriptStep("prep.py", name="prep", source_directory=shared)
    train = PythonScriptStep("train.py", name="train", source_directory=shared)
    with pytest.warns(UserWarning) as caught:
        assert Pipeline(sqlite_workspace, [prep, train]).validate() == []  # a warning, not an error
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert messages[0].startswith("Steps 'prep', 'train' share source_directory")
    assert str(shared.path.resolve()) in messages[0]
    assert "a change to any file in it reruns all of them" in messages[0]


def test_outputs_written_twice_or_named_twice(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    data = PipelineData("result")
    a = step(tmp_path, "a", outputs=[data])
    b = step(tmp_path, "b", outputs=[data])
    error = only_error(Pipeline(sqlite_workspace, [a, b]))
    assert "Output 'result' is written by both 'a' and 'b'" in error
    c = step(tmp_path, "c", outputs=[PipelineData("same")])
    d = step(tmp_path, "d", outputs=[PipelineData("same")])
    error = only_error(Pipeline(sqlite_workspace, [c, d]))
    assert "Two different outputs are named 'same'" in error


def test_every_problem_is_reported_at_once(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    a = PythonScriptStep("missing.py", name="a", source_directory=folder(tmp_path, "a"))
    b = step(tmp_path, "b", arguments=[PipelineParameter("epochs", None)])
    b2 = PythonScriptStep("main.py", name="b", source_directory=folder(tmp_path, "b2"))
    errors = Pipeline(sqlite_workspace, [a, b, b2]).validate()
    assert len(errors) == 3, errors
    assert any("Two steps are named 'b'" in e for e in errors)
    assert any("script 'missing.py' does not exist" in e for e in errors)
    assert any("PipelineParameter 'epochs' has no value" in e for e in errors)


def test_authoring_objects_reject_bad_values_at_once(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="letters, digits and '_'"):
        PipelineData("has-dash")
    with pytest.raises(InvalidInputError, match="output_mode must be 'mount' or 'upload'"):
        PipelineData("ok", output_mode="download")
    with pytest.raises(InvalidInputError, match="default_value must be int, float, bool or str"):
        PipelineParameter("lr", [0.1])
    with pytest.raises(InvalidInputError, match="multi-line"):
        PipelineParameter("text", "a\nb")
    with pytest.raises(InvalidInputError, match="cannot use a dict here"):
        PythonScriptStep("main.py", arguments=[{"lr": 0.1}])


def test_step_sequence_orders_steps_without_data(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    a, b, c = step(tmp_path, "a"), step(tmp_path, "b"), step(tmp_path, "c")
    graph = Pipeline(sqlite_workspace, [StepSequence([a, b, c])]).graph
    assert {s["name"]: s["run_after"] for s in graph["steps"]} == {"a": [], "b": ["a"], "c": ["b"]}


def test_an_invalid_pipeline_is_not_submitted_and_nothing_runs(workspace: Workspace, tmp_path: Path) -> None:
    good = step(tmp_path, "good")
    bad = PythonScriptStep("nope.py", name="bad", source_directory=folder(tmp_path, "bad"))
    pipeline = Pipeline(workspace, [good, bad])
    with pytest.raises(InvalidInputError) as caught:
        pipeline.submit("validation")
    assert str(caught.value).startswith("The pipeline cannot be submitted:\n- Step 'bad': script 'nope.py'")
    with pytest.raises(InvalidInputError, match="is not valid"):
        _ = pipeline.graph
    assert workspace.store.list_runs(run_type=PIPELINE_RUN_TYPE) == []
    assert workspace.store.list_runs(run_type=STEP_RUN_TYPE) == []
    assert service_info(workspace) is None  # no scheduler was started for it
    assert not (workspace.path / "scheduler.json").exists()

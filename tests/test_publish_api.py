"""Publishing from Python (v1's PublishedPipeline and PipelineEndpoint): what is frozen at publish, how
submits find the right version, and the clear refusals (disabled, unknown version, taken name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.core.experiment import Experiment
from runyard.errors import (
    ConflictError,
    InvalidInputError,
    PipelineDisabled,
    PipelineEndpointNotFound,
    PublishedPipelineNotFound,
)
from runyard.pipeline import (
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PublishedPipeline,
    PythonScriptStep,
)
from runyard.pipeline.pipeline import submitted_as

pytestmark = pytest.mark.usefixtures("no_stray_processes")

HELLO = """
    import sys
    print("VERSION-1", sys.argv[sys.argv.index("--greeting") + 1])
"""


def hello_pipeline(ws: Workspace, tmp_path: Path) -> tuple[Pipeline, Path]:
    source = SourceDir(tmp_path / "hello").gen({"hello.py": HELLO})
    greeting = PipelineParameter("greeting", "hello")
    step = PythonScriptStep(
        "hello.py", name="hello", arguments=["--greeting", greeting], source_directory=str(source)
    )
    return Pipeline(ws, [step], description="say hello"), source.path / "hello.py"


def pipeline_runs(ws: Workspace) -> list[str]:
    return [r.run_id for r in ws.store.list_runs(top_level_only=True)]


def test_a_published_pipeline_runs_the_files_as_they_were_at_publish(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    pipeline, script = hello_pipeline(ws, tmp_path)
    published = pipeline.publish(
        name="hello", description="greets", version="1.0", continue_on_step_failure=True
    )
    script.write_text('print("VERSION-2")\n')  # an edit after publishing changes nothing

    run = PublishedPipeline.get(ws, published.id).submit(
        ws, "published", pipeline_parameters={"greeting": "hi"}, show_output=False
    )
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    log = run.find_step_run("hello")[0].get_job_log()
    assert "VERSION-1 hi" in log and "VERSION-2" not in log
    assert run.get_properties()["azureml.pipelineid"] == published.id
    assert run.get_properties()["azureml.runsource"] == "azureml.PipelineRun"
    assert ws.store.get_run(run.id).data["continueOnStepFailure"] is True  # the published setting
    assert [r.id for r in PipelineRun.get_pipeline_runs(ws, published.id)] == [run.id]

    # an endpoint in front of it, and a second version published from that run (its graph, its snapshot)
    endpoint = PipelineEndpoint.publish(ws, "hello-door", "the door", published)
    from_run = run.publish_pipeline("hello-again", "from a run", "2.0")
    assert ws.store.get_published_pipeline(from_run.id).data["sourceRunId"] == run.id
    assert from_run.get_graph()["steps"] == run.get_graph()["steps"]
    endpoint.add_default(from_run)
    again = Experiment(ws, "published").submit(
        endpoint, pipeline_parameters={"greeting": "yo"}, show_output=False
    )
    assert again.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert "VERSION-1 yo" in again.find_step_run("hello")[0].get_job_log()
    properties = again.get_properties()
    assert properties["azureml.pipelineEndpointId"] == endpoint.id
    assert properties["azureml.pipelineid"] == from_run.id  # the default version, "1"


def test_publish_records_what_was_frozen_and_where_it_is_served(workspace: Workspace, tmp_path: Path) -> None:
    pipeline, _ = hello_pipeline(workspace, tmp_path)
    with submitted_as({"token": "tok-1", "name": "ci"}):
        published = pipeline.publish(name="hello", description="greets", version="3")
    record = workspace.store.get_published_pipeline(published.id)
    assert record.data["createdBy"] == {"token": "tok-1", "name": "ci"}
    assert all("snapshot" in step["source"] for step in record.graph["steps"])
    assert (published.name, published.description, published.version, published.status) == (
        "hello",
        "greets",
        "3",
        "Active",
    )
    assert (
        published.endpoint
        == f"{workspace.studio_url}/pipelines/v1.0/PipelineRuns/PipelineSubmit/{published.id}"
    )
    assert published.total_run_steps == 1 and published.get_step_names() == ["hello"]
    assert published.continue_on_step_failure is False
    assert published.graph_id == pipeline.publish(name="same graph").graph_id  # same content, same graph id
    assert [p.name for p in PublishedPipeline.list(workspace)] == ["same graph", "hello"]  # newest first


def test_a_disabled_published_pipeline_is_refused_until_enabled(workspace: Workspace, tmp_path: Path) -> None:
    pipeline, _ = hello_pipeline(workspace, tmp_path)
    published = pipeline.publish(name="hello")
    published.disable()
    assert PublishedPipeline.get(workspace, published.id).status == "Disabled"
    assert PublishedPipeline.list(workspace) == []
    assert [p.id for p in PublishedPipeline.list(workspace, active_only=False)] == [published.id]
    with pytest.raises(PipelineDisabled, match=r"is Disabled, so it cannot be submitted; enable it first"):
        published.submit(workspace, "exp", show_output=False)
    assert pipeline_runs(workspace) == []  # nothing was created
    published.enable()
    assert PublishedPipeline.get(workspace, published.id).status == "Active"


def test_submit_refuses_wrong_kinds_before_creating_a_run(workspace: Workspace, tmp_path: Path) -> None:
    """Unknown names are ignored with a warning, as v1 does (tests/test_publish_samples.py); wrong kinds not."""
    pipeline, _ = hello_pipeline(workspace, tmp_path)
    published = pipeline.publish(name="hello")
    with pytest.raises(InvalidInputError, match=r"pipeline_parameters\['greeting'\] must be a plain value"):
        published.submit(
            workspace, "exp", pipeline_parameters={"greeting": {"datapath": {}}}, show_output=False
        )
    assert pipeline_runs(workspace) == []
    with pytest.raises(PublishedPipelineNotFound):
        PublishedPipeline.get(workspace, "no-such-id")


def test_endpoint_versions_default_and_submit_refusals(workspace: Workspace, tmp_path: Path) -> None:
    pipeline, _ = hello_pipeline(workspace, tmp_path)
    first, second, third = (pipeline.publish(name=f"hello-{n}") for n in range(3))
    endpoint = PipelineEndpoint.publish(workspace, "door", "a door", first)
    assert endpoint.endpoint == (
        f"{workspace.studio_url}/pipelines/v1.0/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint.id}"
    )
    with pytest.raises(ConflictError, match=r"named 'door' already exists.*add_default"):
        PipelineEndpoint.publish(workspace, "door", "again", second)

    endpoint.add(second)
    assert endpoint.get_default_version() == "0"
    endpoint.add_default(third)
    endpoint.add(second)  # already there: keeps its version
    got = PipelineEndpoint.get(workspace, name="door")
    assert [(v.version, v.pipeline.id) for v in got.list_versions()] == [
        ("0", first.id),
        ("1", second.id),
        ("2", third.id),
    ]
    assert got.get_default_version() == "2" and got.get_pipeline().id == third.id
    assert got.get_pipeline("1").id == second.id
    got.set_default_version("1")
    assert PipelineEndpoint.get(workspace, got.id).default_version == "1"
    got.set_default(first)
    assert PipelineEndpoint.get(workspace, got.id).get_pipeline().id == first.id
    with pytest.raises(InvalidInputError, match=r"Cannot set version '7'.*has versions 0, 1, 2"):
        got.set_default_version("7")
    with pytest.raises(InvalidInputError, match=r"has no version '9' \(its versions: 0, 1, 2\)"):
        got.submit("exp", pipeline_version="9", show_output=False)

    got.disable()
    with pytest.raises(PipelineDisabled, match=r"Pipeline endpoint 'door' .* is Disabled"):
        got.submit("exp", show_output=False)
    assert PipelineEndpoint.list(workspace) == []
    got.enable()
    second.disable()  # the version it would run is disabled: refused too
    with pytest.raises(PipelineDisabled, match=r"Published pipeline 'hello-1'"):
        got.submit("exp", pipeline_version="1", show_output=False)
    assert pipeline_runs(workspace) == []

    got.archive()  # v1: disabled under a random name, which frees "door"
    with pytest.raises(PipelineEndpointNotFound):
        PipelineEndpoint.get(workspace, name="door")
    got.reactivate("door")
    assert PipelineEndpoint.get(workspace, name="door").status == "Active"
    assert [e.name for e in PipelineEndpoint.list(workspace)] == ["door"]
    with pytest.raises(InvalidInputError, match=r"needs id=\.\.\. or name="):
        PipelineEndpoint.get(workspace)


def test_endpoint_publish_of_a_pipeline_publishes_it_first(workspace: Workspace, tmp_path: Path) -> None:
    pipeline, _ = hello_pipeline(workspace, tmp_path)
    endpoint = PipelineEndpoint.publish(workspace, "door", "a door", pipeline)
    published = endpoint.get_pipeline()
    assert published.name.startswith("door-") and published.name.endswith("-Pipeline")
    with pytest.raises(InvalidInputError, match="takes a PublishedPipeline"):
        endpoint.add(pipeline)  # type: ignore[arg-type]

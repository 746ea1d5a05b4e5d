"""Papercuts met running Microsoft's v1 samples (the iris ParallelRunStep notebook) on runyard.

`env.spark.precache_packages = False` needs a Spark section object; docker warnings point at the user's
line and stay quiet for a default value; a notebook without ipywidgets gets plain progress lines instead of
rich's lone "install ipywidgets" warning; a failed step's missing output says the step failed; and an
environment with azureml-dataset-runtime[pandas] gets the pandas below 3 v1 pinned.
"""

from __future__ import annotations

import builtins
import importlib.util
import inspect
import sys
import uuid
import warnings

import pytest

from conftest import insert_pipeline
from runyard import Experiment, Workspace, compat
from runyard.compat import V1ParameterIgnored
from runyard.data.transfer import PROGRESS_MIN_FILES, Job, run_jobs
from runyard.environments.conda_map import azureml_brings
from runyard.environments.definition import SparkSection, default_spark
from runyard.environments.environment import Environment
from runyard.errors import InvalidInputError
from runyard.pipeline.runs import StepRun
from runyard.status import RunStatus


# -- Environment.spark ----------------------------------------------------------------------------------
def test_spark_is_a_section_that_serialises_as_v1() -> None:
    env = Environment("iris-env")
    assert isinstance(env.spark, SparkSection)
    assert env.to_definition()["spark"] == default_spark()
    env.spark.precache_packages = False  # Microsoft's iris parallel-run sample
    env.spark.repositories = ["https://mmlspark.azureedge.net/maven"]
    spark = env.to_definition()["spark"]
    assert spark == {
        "repositories": ["https://mmlspark.azureedge.net/maven"],
        "packages": [],
        "precachePackages": False,
    }
    loaded = Environment.from_definition(env.to_definition())
    assert loaded.spark.precache_packages is False
    assert loaded.spark.repositories == ["https://mmlspark.azureedge.net/maven"]
    assert loaded.to_definition()["spark"] == spark


# -- docker warnings ----------------------------------------------------------------------------------------
def test_a_docker_warning_points_at_the_users_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "_warned", set())  # a fresh "warned once" memory for this test
    env = Environment("docker-env")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        env.docker.base_image = "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04"
    ignored = [w for w in caught if issubclass(w.category, V1ParameterIgnored)]
    assert [(w.filename, w.lineno) for w in ignored] == [(__file__, line)]
    assert "'base_image'" in str(ignored[0].message)
    monkeypatch.setattr(compat, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        Environment.from_docker_image("img", "python:3.11-slim")  # runyard sets base_image for the user
    ignored = [w for w in caught if issubclass(w.category, V1ParameterIgnored)]
    assert [(w.filename, w.lineno) for w in ignored] == [(__file__, line)]


def test_setting_a_docker_default_does_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "_warned", set())
    env = Environment("docker-env")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.docker.enabled = False  # v1 samples write the default out
        env.docker.shared_volumes = True
        env.docker.arguments = []
    assert env.to_definition()["docker"]["enabled"] is False
    with pytest.warns(V1ParameterIgnored, match="'enabled'"):
        env.docker.enabled = True  # a value that would matter in v1 still warns


# -- transfer progress in a notebook ------------------------------------------------------------------------
class ZMQInteractiveShell:
    """Stands in for a Jupyter kernel's shell: the class name and `kernel` are what rich and runyard ask."""

    kernel = object()


def test_a_notebook_without_ipywidgets_gets_plain_progress_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("ipywidgets") is not None:
        pytest.skip("ipywidgets is installed here: rich's notebook display works")
    import IPython

    shell = ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", IPython)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell, raising=False)
    monkeypatch.setattr(builtins, "get_ipython", lambda: shell, raising=False)  # where rich looks
    jobs = [Job(f"f{i}.csv", 10, lambda: True) for i in range(PROGRESS_MIN_FILES)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rich's `install "ipywidgets" for Jupyter support` would raise
        outcome = run_jobs(jobs, show_progress=True, description="Uploading")
    assert outcome.done == PROGRESS_MIN_FILES
    err = capsys.readouterr().err
    assert f"Uploading {PROGRESS_MIN_FILES}/{PROGRESS_MIN_FILES} files" in err
    assert "ipywidgets" not in err


# -- a failed step's outputs ----------------------------------------------------------------------------------
def test_a_failed_steps_missing_output_says_it_failed(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    step_id = str(uuid.uuid4())
    graph = {"steps": [{"name": "example-iris", "outputs": [{"name": "inferences"}]}]}
    run_id = insert_pipeline(ws, {"graph": graph}, ["example-iris"], step_ids={"example-iris": step_id})
    ws.store.set_run_status(run_id, RunStatus.FAILED, force=True)
    ws.store.set_run_status(step_id, RunStatus.FAILED, force=True)
    step = StepRun(Experiment(ws, "crafted"), step_id)
    said = (
        f"Step 'example-iris' Failed before recording output 'inferences'; see its logs: "
        f"`runyard runs show {step_id}`"
    )
    with pytest.raises(InvalidInputError) as raised:
        step.get_output("inferences")
    assert str(raised.value) == said
    with pytest.raises(InvalidInputError, match="Failed before recording output 'inferences'"):
        step.get_output_data("inferences")
    # a name the graph does not declare is still a wrong name
    with pytest.raises(InvalidInputError, match="has no output 'scores'; it has none"):
        step.get_output("scores")


# -- pandas below 3 for v1's data packages ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "brings"),
    [
        ("azureml-dataset-runtime[pandas,fuse]", ("pandas<3",)),
        ("azureml-dataprep[pandas]>=4", ("pandas<3",)),
        ("azureml_dataprep[Pandas]", ("pandas<3",)),
        ("azureml-dataset-runtime[fuse]", None),
        ("azureml-dataprep", None),
        ("azureml-mlflow", ("mlflow-skinny",)),
        ("azureml-core", None),
    ],
)
def test_v1_data_packages_with_pandas_bring_pandas_below_3(line: str, brings: tuple[str, ...] | None) -> None:
    found = azureml_brings(line)
    assert (found.requirements if found else None) == brings
    if found is not None and brings == ("pandas<3",):
        assert found.covered_by == ("pandas",)  # an environment that lists pandas keeps its own

"""RunConfiguration, DockerConfiguration, ScriptRunConfig(run_config=...), and outputs passed in a
ScriptRunConfig's arguments (bug 3), each with real submitted runs on a real SQLite workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.compat import V1ParameterIgnored
from runyard.core.runconfig import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE, DockerConfiguration, RunConfiguration
from runyard.environments.environment import Environment
from runyard.errors import ConflictError, InvalidInputError, NotFoundError
from runyard.pipeline import OutputFileDatasetConfig, PipelineData

WRITE_OUTPUT = """
import os, sys
folder = sys.argv[sys.argv.index("--out") + 1]
print("OUT", folder)
assert os.path.isdir(folder), folder
with open(os.path.join(folder, "result.txt"), "w") as fh:
    fh.write("written by the script")
"""


def submit(ws: Workspace, config: ScriptRunConfig) -> dict[str, object]:
    run = Experiment(ws, "runconfig").submit(config)
    return run.wait_for_completion(raise_on_error=False)


def only_output(details: dict[str, object]) -> dict[str, object]:
    outputs = details["outputDatasets"]
    assert isinstance(outputs, list) and len(outputs) == 1
    return dict(outputs[0])


def register_names(ws: Workspace, *names: str) -> None:
    """Register environments that run the submitting interpreter as is: a name given as environment= is
    looked up at submit (registered, then curated), so the names these tests pass must exist."""
    for name in names:
        env = Environment(name)
        env.python.user_managed_dependencies = True
        env.register(ws)


def definition(details: dict[str, object]) -> dict[str, object]:
    value = details["runDefinition"]
    assert isinstance(value, dict)
    return value


def test_v1_constants_and_defaults() -> None:
    assert DEFAULT_CPU_IMAGE.startswith("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04")
    assert DEFAULT_GPU_IMAGE.startswith("mcr.microsoft.com/azureml/openmpi4.1.0-cuda")
    rc = RunConfiguration()
    assert (rc.target, rc.node_count, rc.framework, rc.communicator) == ("local", 1, "Python", "None")
    assert rc.docker.use_docker is False and rc.environment_variables == {}


def test_run_config_supplies_script_arguments_and_settings(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": "import sys; print('ARGS', sys.argv[1:])\n"})
    rc = RunConfiguration(script="train.py", arguments=["--lr", 0.1])
    register_names(sqlite_workspace, "my-env")
    rc.environment = "my-env"
    rc.max_run_duration_seconds = 600
    details = submit(sqlite_workspace, ScriptRunConfig(source_dir, run_config=rc))
    assert details["status"] == "Completed"
    spec = definition(details)
    assert (spec["script"], spec["arguments"], spec["target"]) == ("train.py", ["--lr", "0.1"], "local")
    assert (spec["environment"], spec["maxRunDurationSeconds"], spec["nodeCount"]) == ("my-env", 600, 1)
    run = sqlite_workspace.get_run(str(details["runId"]))
    assert "ARGS ['--lr', '0.1']" in run.read_log("azureml-logs/70_driver_log.txt").decode()


def test_explicit_settings_win_over_the_run_configs(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"a.py": "print('A')\n", "b.py": "print('B')\n"})
    rc = RunConfiguration(script="a.py", arguments=["--from-rc"])
    rc.target = "local"
    register_names(sqlite_workspace, "rc-env", "explicit-env")
    rc.environment = "rc-env"
    src = ScriptRunConfig(source_dir, script="b.py", arguments=[], run_config=rc, environment="explicit-env")
    assert (src.script, src.arguments, src.environment, src.run_config is rc) == (
        "b.py",
        [],
        "explicit-env",
        True,
    )
    spec = definition(submit(sqlite_workspace, src))
    assert (spec["script"], spec["arguments"], spec["environment"]) == ("b.py", [], "explicit-env")


def test_settings_changed_on_run_config_after_construction_count(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": "print('ok')\n"})
    src = ScriptRunConfig(source_dir, script="train.py")
    register_names(sqlite_workspace, "late-env")
    src.run_config.environment = "late-env"
    src.run_config.node_count = 1
    spec = definition(submit(sqlite_workspace, src))
    assert spec["environment"] == "late-env"


def test_docker_and_node_count_are_accepted_and_named(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": "print('ok')\n"})
    with pytest.warns(V1ParameterIgnored, match="'use_docker'.*local process"):
        docker = DockerConfiguration(use_docker=True)
    rc = RunConfiguration(script="train.py")
    rc.docker = docker
    rc.node_count = 2
    with pytest.warns(V1ParameterIgnored) as named:
        details = submit(sqlite_workspace, ScriptRunConfig(source_dir, run_config=rc))
    assert details["status"] == "Completed"  # ran as one local process
    messages = " ".join(str(w.message) for w in named)
    assert "docker.use_docker" in messages and "node_count" in messages
    assert definition(details)["nodeCount"] == 2 and definition(details)["docker"]["useDocker"] is True  # type: ignore[index]


def test_a_run_config_of_the_wrong_type_is_refused(source_dir: SourceDir) -> None:
    source_dir.gen({"train.py": ""})
    with pytest.raises(InvalidInputError, match="run_config must be a RunConfiguration"):
        ScriptRunConfig(source_dir, "train.py", run_config={"target": "local"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="script="):
        ScriptRunConfig(source_dir, run_config=RunConfiguration())


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rc = RunConfiguration(script="train.py", arguments=["--x", "1"])
    rc.target = "cpu-cluster"
    rc.node_count = 3
    rc.environment_variables = {"A": "1"}
    rc.save(tmp_path, "train")
    assert (tmp_path / ".azureml" / "train.runconfig").is_file()
    back = RunConfiguration.load(tmp_path, "train")
    assert (back.script, back.arguments, back.target, back.node_count) == (
        "train.py",
        ["--x", "1"],
        "cpu-cluster",
        3,
    )
    assert back.environment_variables == {"A": "1"}
    RunConfiguration.delete(tmp_path, "train")
    with pytest.raises(NotFoundError, match="No run configuration"):
        RunConfiguration.load(tmp_path, "train")


def test_submit_refuses_keywords_a_script_run_does_not_take(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": ""})
    with pytest.raises(TypeError, match="pipeline_parameters"):
        Experiment(sqlite_workspace, "keywords").submit(
            ScriptRunConfig(source_dir, "train.py"), pipeline_parameters={"a": 1}
        )
    with pytest.raises(TypeError, match="Did you mean 'arguments'"):
        ScriptRunConfig(source_dir, "train.py", argumnets=[])  # type: ignore[call-arg]


# -- bug 3: an output in arguments reaches the script as a folder it can write ------------------------


def test_output_in_arguments_is_a_created_folder_kept_after_the_run(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": WRITE_OUTPUT})
    out = OutputFileDatasetConfig(name="model_out")
    details = submit(sqlite_workspace, ScriptRunConfig(source_dir, "train.py", arguments=["--out", out]))
    assert details["status"] == "Completed", details.get("error")
    run_id = str(details["runId"])
    store = sqlite_workspace.get_default_datastore()
    folder = store.local_path(f"azureml/{run_id}/model_out")
    assert (folder / "result.txt").read_text() == "written by the script"
    assert definition(details)["arguments"] == [
        "--out",
        str(folder),
    ]  # not "$AZUREML_DATAREFERENCE_model_out"
    recorded = only_output(details)
    assert recorded["outputDetails"] == {"outputName": "model_out"}
    assert (recorded["datastore"], recorded["pathOnDatastore"]) == (
        "workspaceblobstore",
        f"azureml/{run_id}/model_out",
    )


def test_output_destination_placeholders_and_unnamed_outputs(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": WRITE_OUTPUT})
    store = sqlite_workspace.get_default_datastore()
    out = OutputFileDatasetConfig(name="prepared", destination=(store, "exports/{run-id}/{output-name}"))
    details = submit(sqlite_workspace, ScriptRunConfig(source_dir, "train.py", arguments=["--out", out]))
    folder = store.local_path(f"exports/{details['runId']}/prepared")
    assert (folder / "result.txt").is_file()

    unnamed = PipelineData("data")  # the older output class works the same way
    unnamed.name = ""
    details = submit(sqlite_workspace, ScriptRunConfig(source_dir, "train.py", arguments=["--out", unnamed]))
    recorded = only_output(details)
    assert str(recorded["name"]).startswith("output_") and Path(str(recorded["path"]), "result.txt").is_file()


def test_outputs_that_cannot_be_written_are_refused_before_the_run(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": WRITE_OUTPUT})
    store = sqlite_workspace.get_default_datastore()
    fixed = OutputFileDatasetConfig(name="fixed", destination=(store, "shared/fixed"))
    assert (
        submit(sqlite_workspace, ScriptRunConfig(source_dir, "train.py", arguments=["--out", fixed]))[
            "status"
        ]
        == "Completed"
    )
    with pytest.raises(ConflictError, match="already holds files"):
        Experiment(sqlite_workspace, "runconfig").submit(
            ScriptRunConfig(source_dir, "train.py", arguments=["--out", fixed])
        )
    with pytest.raises(InvalidInputError, match="no steps before it"):
        Experiment(sqlite_workspace, "runconfig").submit(
            ScriptRunConfig(source_dir, "train.py", arguments=["--in", fixed.as_input()])
        )
    assert json.loads((Path(sqlite_workspace.path) / "config.json").read_text())  # workspace untouched


def test_a_refused_output_destination_leaves_no_folders_and_no_run(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    """The datastore's root (every run's outputs live there) is refused as for a pipeline step, and
    the outputs checked before it are not created either: a refused submit leaves nothing behind."""
    source_dir.gen({"train.py": WRITE_OUTPUT})
    store = sqlite_workspace.get_default_datastore()
    first = OutputFileDatasetConfig(name="first", destination=(store, "kept/{run-id}"))
    for root in ("/", "./", "{output-name}/..", "a/./.."):
        bad = OutputFileDatasetConfig(name="bad", destination=(store, root))
        with pytest.raises(InvalidInputError, match=r"datastore's root|may not contain '\.\.'"):
            Experiment(sqlite_workspace, "runconfig").submit(
                ScriptRunConfig(source_dir, "train.py", arguments=["--a", first, "--b", bad])
            )
    assert not store.local_path("kept").exists()
    assert list(sqlite_workspace.store.list_runs(experiment_name="runconfig")) == []


def test_a_script_whose_name_is_an_interpreter_option_is_refused(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"-mjson.tool": "print('file')\n", "-c.py": "print('file')\n"})
    for script in ("-mjson.tool", "-c.py"):
        with pytest.raises(InvalidInputError, match=r"starts with '-'.*Rename the file"):
            Experiment(sqlite_workspace, "runconfig").submit(ScriptRunConfig(source_dir, script))


def test_environment_variables_reach_the_script(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "train.py": "import os; print('ENV', os.environ.get('MY_SETTING'), os.environ.get('AZUREML_DATAREFERENCE_o'))\n"
        }
    )
    rc = RunConfiguration(script="train.py")
    rc.environment_variables = {"MY_SETTING": "on"}
    out = OutputFileDatasetConfig(name="o")
    details = submit(sqlite_workspace, ScriptRunConfig(source_dir, arguments=[out], run_config=rc))
    log = sqlite_workspace.get_run(str(details["runId"])).read_log("azureml-logs/70_driver_log.txt").decode()
    assert "ENV on /" in log

"""v1's environment API: Environment, CondaDependencies, PythonSection/DockerSection, the registry in a real
workspace (SQLite and PostgreSQL), curated names, files, RunConfiguration's environment and the v1 import
paths. Defaults are compared with what azureml-core 1.61 writes."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Experiment, ScriptRunConfig, Workspace, compat
from runyard.compat import V1ParameterIgnored
from runyard.core.runconfig import RunConfiguration
from runyard.environments.conda import CondaDependencies
from runyard.environments.curated import CURATED
from runyard.environments.definition import (
    DEFAULT_CPU_IMAGE,
    definition_display_name,
    environment_definition,
)
from runyard.environments.environment import Environment, EnvironmentReference
from runyard.errors import EnvironmentDefinitionError, EnvironmentNotFound, InvalidInputError
from runyard.pipeline import Pipeline, PythonScriptStep

#: azureml-core 1.61's Environment._serialize_to_dict(Environment("x")), docker image aside.
V1_DEFAULT = {
    "name": "x",
    "version": None,
    "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
    "python": {
        "userManagedDependencies": False,
        "interpreterPath": "python",
        "condaDependenciesFile": None,
        "baseCondaEnvironment": None,
        "condaDependencies": {
            "name": "project_environment",
            "dependencies": ["python=3.8.13", {"pip": ["azureml-defaults"]}],
            "channels": ["anaconda", "conda-forge"],
        },
    },
    "docker": {
        "enabled": False,
        "baseImage": DEFAULT_CPU_IMAGE,
        "baseDockerfile": None,
        "buildContext": None,
        "sharedVolumes": True,
        "shmSize": "2g",
        "arguments": [],
        "baseImageRegistry": {"address": None, "username": None, "password": None, "registryIdentity": None},
        "platform": {"os": "Linux", "architecture": "amd64"},
    },
    "spark": {"repositories": [], "packages": [], "precachePackages": True},
    "databricks": {
        "mavenLibraries": [],
        "pypiLibraries": [],
        "rcranLibraries": [],
        "jarLibraries": [],
        "eggLibraries": [],
    },
    "r": None,
    "inferencingStackVersion": None,
    "assetId": None,
}


def tabulate_env(name: str = "train-env", version: str = "0.9.0") -> Environment:
    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=[f"tabulate=={version}"])
    return env


# -- construction ---------------------------------------------------------------------------------------
def test_a_new_environment_is_v1s_default_json() -> None:
    env = Environment("x")
    assert env.to_definition() == V1_DEFAULT
    assert (env.version, env.r, env.inferencing_stack_version) == (None, None, None)
    assert Environment.from_definition(V1_DEFAULT).to_definition() == V1_DEFAULT
    with pytest.raises(TypeError, match="Environment name expected str, int found"):
        Environment(3)  # type: ignore[arg-type]


def test_condadependencies_create_matches_v1_and_round_trips_through_a_file(tmp_path: Path) -> None:
    cd = CondaDependencies.create(
        pip_indexurl="https://idx.example/simple",
        pip_packages=["scikit-learn==1.0"],
        conda_packages=["numpy"],
    )
    # azureml-core 1.61 writes exactly this for the same call
    assert cd.as_dict() == {
        "name": "project_environment",
        "dependencies": [
            "python=3.10.18",
            {
                "pip": [
                    "--find-links https://idx.example/simple",
                    "--extra-index-url https://pypi.python.org/simple",
                    "scikit-learn==1.0",
                ]
            },
            "numpy",
        ],
        "channels": ["anaconda", "conda-forge"],
    }
    saved = cd.save(str(tmp_path / "env.yml"))
    again = CondaDependencies(saved)
    assert again == cd and again.serialize_to_string() == cd.serialize_to_string()
    assert again.get_python_version() == "3.10.18"
    assert list(again.pip_options) == [
        "--find-links https://idx.example/simple",
        "--extra-index-url https://pypi.python.org/simple",
    ]
    assert (list(again.pip_packages), list(again.conda_packages)) == (
        ["scikit-learn==1.0"],
        ["python=3.10.18", "numpy"],
    )
    assert again.save_to_file(tmp_path) == ".azureml/auto_conda_dependencies.yml"
    assert CondaDependencies(tmp_path / ".azureml/auto_conda_dependencies.yml") == cd


def test_condadependencies_edits_as_v1_does() -> None:
    cd = CondaDependencies()
    assert (list(cd.conda_packages), list(cd.pip_packages), list(cd.conda_channels)) == (
        ["python=3.8.13"],
        ["azureml-defaults"],
        ["anaconda", "conda-forge"],
    )
    assert cd.get_default_number_of_packages() == (1, 1)
    cd.add_pip_package("pandas")
    cd.add_pip_package("pandas>=2")  # the same package: replaced
    cd.add_conda_package("python=3.11")  # sets the version, adds nothing
    cd.add_channel("pytorch")
    cd.remove_channel("anaconda")
    cd.set_pip_option("--index-url https://a")
    cd.set_pip_index_url("--index-url https://b")  # same flag: replaced
    assert list(cd.pip_packages) == ["azureml-defaults", "pandas>=2"]
    assert list(cd.pip_options) == ["--index-url https://b"]
    assert cd.get_python_version() == "3.11" and list(cd.conda_channels) == ["conda-forge", "pytorch"]
    cd.remove_pip_option("--index-url")
    cd.remove_pip_package("azureml-defaults")
    cd.add_tensorflow_pip_package(version="2.15.0")
    assert list(cd.pip_packages) == ["pandas>=2", "tensorflow==2.15.0"] and list(cd.pip_options) == []
    assert CondaDependencies.merge_requirements(["a>1", "b", "a<3"]) == ["a>1,<3", "b"]
    with pytest.raises(EnvironmentDefinitionError, match="python must not be removed"):
        cd.remove_conda_package("python=3.11")
    with pytest.raises(EnvironmentDefinitionError, match="Invalid package name"):
        cd.add_pip_package("--no-deps")
    with pytest.raises(EnvironmentDefinitionError, match=r"CNTK cannot be added.*Python 3\.7.*torch"):
        cd.add_cntk_package()


def test_a_conda_file_that_does_not_parse_names_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: env\ndependencies:\n  - numpy\n  - pip: [tabulate\nchannels: [conda-forge]\n")
    with pytest.raises(EnvironmentDefinitionError, match=r"broken\.yml line \d+: not valid YAML"):
        Environment.from_conda_specification("env", broken)
    unknown = tmp_path / "unknown.yml"
    unknown.write_text("name: env\ndependencies:\n  - numpy\npackages: [x]\n")
    with pytest.raises(EnvironmentDefinitionError, match=r"unknown\.yml line 4: unknown key 'packages'"):
        CondaDependencies(unknown)
    shape = tmp_path / "shape.yml"
    shape.write_text("dependencies:\n  - numpy\n  - conda: [x]\n")
    with pytest.raises(EnvironmentDefinitionError, match=r"shape\.yml line 3: a dependency must be"):
        CondaDependencies(shape)
    with pytest.raises(
        EnvironmentDefinitionError, match=r"Cannot read the conda specification .*missing\.yml"
    ):
        CondaDependencies(tmp_path / "missing.yml")


def test_from_conda_specification_pins_v1s_default_python_when_the_file_has_none(tmp_path: Path) -> None:
    spec = tmp_path / "env.yml"
    spec.write_text(
        "name: env\nchannels: [conda-forge]\ndependencies:\n  - numpy\n  - pip:\n    - tabulate\n"
    )
    env = Environment.from_conda_specification("from-conda", spec)
    cd = env.python.conda_dependencies
    assert cd is not None and cd.get_python_version() == "3.10.18"
    assert list(cd.pip_packages) == ["tabulate"] and "numpy" in list(cd.conda_packages)
    assert env.to_definition()["runyard"] == {"curated": None, "source": str(spec)}


def test_from_pip_requirements_reads_the_file_now_and_names_a_bad_line(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0\n")
    good = tmp_path / "requirements.txt"
    good.write_text(
        "# pinned for the sample\n\ntabulate==0.9.0  # tables\n-r base.txt\n--extra-index-url https://x\n"
    )
    env = Environment.from_pip_requirements("pip-env", good)
    cd = env.python.conda_dependencies
    assert cd is not None
    assert list(cd.pip_packages) == ["tabulate==0.9.0", "six==1.16.0"]
    assert list(cd.pip_options) == ["--extra-index-url https://x"]
    assert "pip" in list(cd.conda_packages)  # v1 adds pip (unpinned without pip_version)
    pinned = Environment.from_pip_requirements("pip-env", good, pip_version="23.3")
    assert "pip=23.3" in list(pinned.python.conda_dependencies.conda_packages)  # type: ignore[union-attr]

    bad = tmp_path / "sub" / "requirements.txt"
    bad.parent.mkdir()
    bad.write_text("numpy\n\nsckit learn>>1\n")
    with pytest.raises(EnvironmentDefinitionError) as caught:
        Environment.from_pip_requirements("bad", bad)
    assert f"{bad} line 3: 'sckit learn>>1' is not a pip requirement (" in str(caught.value)
    with pytest.raises(
        EnvironmentDefinitionError, match=r"Cannot read the pip requirements file .*nope\.txt"
    ):
        Environment.from_pip_requirements("bad", tmp_path / "nope.txt")


def test_from_existing_conda_environment_without_conda_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no conda on it
    with pytest.raises(EnvironmentDefinitionError, match=r"conda is not installed here.*conda env export"):
        Environment.from_existing_conda_environment("e", "base")


def test_docker_settings_are_recorded_and_warned_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "_warned", set())  # a fresh "warned once" memory for this test
    env = Environment("docker-env")
    with pytest.warns(V1ParameterIgnored, match="'enabled'.*runyard runs every job as a local process"):
        env.docker.enabled = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.docker.enabled = True  # the second time is quiet
        loaded = Environment.from_definition(env.to_definition())  # reading back never warns
    assert env.to_definition()["docker"]["enabled"] is True and loaded.docker.enabled is True
    with pytest.warns(V1ParameterIgnored, match="'base_image'"):
        image = Environment.from_docker_image("img", "python:3.11-slim")
    assert image.docker.base_image == "python:3.11-slim" and image.python.user_managed_dependencies is True


def test_environment_definition_is_none_for_the_untouched_default() -> None:
    rc = RunConfiguration()
    assert rc.environment.name == "default-environment" and environment_definition(rc.environment) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V1ParameterIgnored)
        rc.environment.docker.enabled = True  # docker alone changes nothing a job runs with
    assert environment_definition(rc.environment) is None
    assert environment_definition(None) is None and environment_definition("some-name") is None
    env = tabulate_env()
    definition = environment_definition(env)
    assert definition == env.to_definition() and environment_definition(definition) == definition
    assert definition_display_name(definition) == "train-env"
    assert definition_display_name({**definition, "version": "3"}) == "train-env:3"
    assert definition_display_name(None) == "the submitting interpreter"
    with pytest.raises(EnvironmentDefinitionError, match="environment= takes an Environment"):
        environment_definition(42)


def test_run_configuration_takes_conda_dependencies_and_the_sample_lines(tmp_path: Path) -> None:
    cd = CondaDependencies.create(pip_packages=["tabulate==0.9.0"])
    rc = RunConfiguration(conda_dependencies=cd)
    assert rc.environment.python.conda_dependencies is cd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V1ParameterIgnored)
        rc.environment.docker.enabled = True
    rc.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
    rc.save(tmp_path, "train")
    loaded = RunConfiguration.load(tmp_path, "train")
    assert isinstance(loaded.environment, Environment)
    assert loaded.environment.to_definition() == rc.environment.to_definition()
    saved = json.loads((tmp_path / ".azureml" / "train.runconfig").read_text())
    assert saved["environment"]["python"]["condaDependencies"]["dependencies"][1] == {"pip": ["six"]}


# -- registry ------------------------------------------------------------------------------------------
def test_register_versions_get_and_list(workspace: Workspace) -> None:
    first = tabulate_env().register(workspace)
    assert (first.name, first.version) == ("train-env", "1")
    assert tabulate_env().register(workspace).version == "1"  # the same definition keeps its version
    second = tabulate_env(version="0.8.10").register(workspace)
    assert second.version == "2"
    assert Environment.get(workspace, "train-env").version == "2"
    old = Environment.get(workspace, "train-env", version="1")
    assert list(old.python.conda_dependencies.pip_packages) == ["tabulate==0.9.0"]  # type: ignore[union-attr]
    assert (
        EnvironmentReference("train-env", "1").get_environment(workspace).to_definition()
        == old.to_definition()
    )
    listed = Environment.list(workspace)
    assert listed["train-env"].version == "2" and set(CURATED) <= set(listed)
    assert workspace.environments.keys() == listed.keys()
    with pytest.raises(
        EnvironmentNotFound, match=r"No version 7 of environment 'train-env'.*versions 1, 2\)"
    ):
        Environment.get(workspace, "train-env", version="7")
    with pytest.raises(EnvironmentNotFound, match=r"No environment 'nope' version 2\. Registered: train-env"):
        Environment.get(workspace, "nope", version="2")
    with pytest.raises(InvalidInputError, match="labels are not supported"):
        Environment.get(workspace, "train-env", label="prod")


def test_curated_names_resolve_and_unknown_ones_list_the_table(workspace: Workspace) -> None:
    minimal = Environment.get(workspace, "AzureML-Minimal")
    definition = minimal.to_definition()
    assert definition["runyard"]["curated"] == "AzureML-Minimal" and minimal.version == "1"
    sklearn = Environment.get(workspace, "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu")
    assert "scikit-learn>=1.3" in list(sklearn.python.conda_dependencies.pip_packages)  # type: ignore[union-attr]
    with pytest.raises(EnvironmentNotFound) as caught:
        Environment.get(workspace, "AzureML-NoSuchThing")
    assert "AzureML-Minimal:" in str(caught.value) and "AzureML-TensorFlow-2.3-CPU:" in str(caught.value)
    with pytest.raises(InvalidInputError, match=r"reserved.*env\.clone\('my-env'\)\.register\(ws\)"):
        minimal.register(workspace)
    mine = minimal.clone("my-minimal").register(workspace)
    assert (mine.name, mine.version) == ("my-minimal", "1")
    assert "runyard" not in mine.to_definition() or mine.to_definition()["runyard"]["curated"] is None


def test_clone_and_directories(tmp_path: Path) -> None:
    env = tabulate_env()
    env.environment_variables = {"MODE": "fast"}
    copy = env.clone("copy")
    assert (copy.name, copy.version, copy.environment_variables) == ("copy", None, {"MODE": "fast"})
    folder = tmp_path / "env"
    env.save_to_directory(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["azureml_environment.json", "conda_dependencies.yml"]
    assert "condaDependencies" not in json.loads((folder / "azureml_environment.json").read_text())["python"]
    assert Environment.load_from_directory(folder).to_definition() == env.to_definition()
    with pytest.raises(InvalidInputError, match="overwrite=True"):
        env.save_to_directory(folder)
    env.save_to_directory(folder, overwrite=True)
    with pytest.raises(InvalidInputError, match=r"No azureml_environment\.json"):
        Environment.load_from_directory(tmp_path)


def test_private_wheels_are_stored_in_the_workspace(workspace: Workspace, tmp_path: Path) -> None:
    wheel = tmp_path / "mypkg-0.1-py3-none-any.whl"
    wheel.write_bytes(b"PK not really a zip")
    stored = Environment.add_private_pip_wheel(workspace, wheel)
    assert Path(stored).read_bytes() == wheel.read_bytes() and Path(stored).name == wheel.name
    with pytest.raises(InvalidInputError, match=r"already stored.*exist_ok=True"):
        Environment.add_private_pip_wheel(workspace, wheel)
    assert Environment.add_private_pip_wheel(workspace, wheel, exist_ok=True) == stored


def test_a_run_without_an_environment_reports_the_interpreter(sqlite_workspace: Workspace) -> None:
    run = Experiment(sqlite_workspace, "env-api").start_logging(snapshot_directory=None, outputs=None)
    env = run.get_environment()
    run.complete()
    assert isinstance(env, Environment) and env.name == "default-environment"
    assert env.python.user_managed_dependencies is True and env.python.interpreter_path == sys.executable


def test_a_run_reports_the_environment_it_ran_with(
    sqlite_workspace: Workspace, tmp_path: Path, no_stray_processes: None
) -> None:
    """Script runs keep the definition in their run definition, steps in their pipeline's graph; a user-managed
    environment builds nothing, so this needs no package index."""
    source = SourceDir(tmp_path / "src").gen({"job.py": "import os\nprint('MODE', os.environ['MODE'])\n"})
    env = Environment("as-is")
    env.python.user_managed_dependencies = True
    env.environment_variables = {"MODE": "as-is"}
    run = Experiment(sqlite_workspace, "env-api").submit(ScriptRunConfig(source, "job.py", environment=env))
    run.wait_for_completion(raise_on_error=True)
    assert run.get_environment().to_definition() == env.to_definition()
    step = PythonScriptStep("job.py", name="step", source_directory=source, environment=env)
    pipeline = Pipeline(sqlite_workspace, [step]).submit("env-api-steps", show_output=False)
    pipeline.wait_for_completion(show_output=False, timeout_seconds=120, raise_on_error=True)
    (step_run,) = pipeline.get_steps()
    assert step_run.get_environment().to_definition() == env.to_definition()


def test_build_local_builds_now_and_reuses_the_build(sqlite_workspace: Workspace) -> None:
    from runyard.environments.build import index_reachable

    problem = index_reachable()
    if problem:
        pytest.skip(f"the package index is unreachable: {problem}")
    env = tabulate_env("built-env")
    first = env.build_local(sqlite_workspace)
    assert first.status == "Succeeded" and first.wait_for_completion()["location"] == first.prepared.location
    shown = subprocess.run(
        [first.prepared.python, "-c", "import tabulate; print(tabulate.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == "0.9.0"
    again = env.build_local(sqlite_workspace)
    assert again.prepared.built is False and again.prepared.location == first.prepared.location
    assert again.get_log().startswith("Reused the build of hash")
    details = env.get_image_details(sqlite_workspace)
    assert details["imageExistsInRegistry"] is True and details["location"] == first.prepared.location
    assert details["requirements"] == ["tabulate==0.9.0"]
    assert details["pythonEnvironment"]["interpreterPath"] == first.prepared.python
    assert (
        Path(details["pythonEnvironment"]["interpreterPath"]) == Path(details["location"]) / "bin" / "python"
    )


def test_v1_import_paths() -> None:
    from runyard.v1.core import Environment as E1
    from runyard.v1.core.conda_dependencies import CondaDependencies as C1
    from runyard.v1.core.environment import DockerSection, PythonSection
    from runyard.v1.core.environment import Environment as E2
    from runyard.v1.core.runconfig import CondaDependencies as C2
    from runyard.v1.core.runconfig import Environment as E3

    assert E1 is E2 is E3 is Environment and C1 is C2 is CondaDependencies
    assert isinstance(Environment("x").python, PythonSection) and isinstance(
        Environment("x").docker, DockerSection
    )


def test_image_details_before_a_build_and_for_user_managed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path / "cache"))  # a cache where nothing is built
    env = tabulate_env("never-built")
    details = env.get_image_details(None)
    assert (details["imageExistsInRegistry"], details["location"]) == (False, "")
    assert details["pythonEnvironment"]["interpreterPath"] == "" and len(details["hash"]) == 64
    env.python.user_managed_dependencies = True
    details = env.get_image_details(None)
    assert (
        details["pythonEnvironment"]["interpreterPath"] == sys.executable and details["userManaged"] is True
    )

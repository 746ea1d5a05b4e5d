"""ParallelRunConfig as a user writes it: v1's signatures, its checks and its YAML form.

No pipeline runs here: every rule is checked when the objects are written or when the pipeline is
validated, so these tests build real datasets over real local files. ParallelRunStep's inputs, the name
rule and the compiled graph (runyard.pipeline.graph.compile_graph, the same call Pipeline.validate()
makes, parsed as the scheduler does) are in test_parallel_step.py.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from parallel_helpers import V1, config, prs_files
from runyard import Workspace
from runyard.engine.graph_parallel import TUNABLE_SETTINGS
from runyard.environments import Environment
from runyard.errors import InvalidInputError
from runyard.parallel import ParallelRunConfig, ParallelRunStep
from runyard.pipeline import PipelineData, PipelineParameter


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Any]:
    return prs_files(tmp_path)


# -- v1's signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "cls"),
    [
        ("azureml.pipeline.steps:ParallelRunConfig", ParallelRunConfig),
        ("azureml.pipeline.steps:ParallelRunStep", ParallelRunStep),
    ],
)
def test_signatures_are_v1s_names_order_and_defaults(key: str, cls: type) -> None:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    ours = [
        [p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default)]
        for p in params
    ]
    assert ours == V1[key]["init"]


def test_defaults_and_attributes(files: dict[str, Any]) -> None:
    c = config(files)
    assert (c.logging_level, c.run_invocation_timeout, c.run_max_try) == ("INFO", 60, 3)
    assert c.process_count_per_node is None and c.mini_batch_size is None
    assert c.append_row_file_name is None and c.partition_keys is None
    assert c.environment_variables == {} and c.entry_script == "score.py"
    assert ParallelRunStep(
        "score-digits", c, [files["file"].as_named_input("images")], PipelineData("out")
    ).allow_reuse


# -- ParallelRunConfig's checks ------------------------------------------------------------------------


def test_environment_must_be_an_environment(files: dict[str, Any]) -> None:
    for bad in (None, "score-env", {"name": "score-env"}):
        with pytest.raises(ValueError, match="environment must be an Environment") as info:
            config(files, environment=bad)
        assert isinstance(info.value, InvalidInputError)


def test_output_action_is_case_insensitive_and_checked(files: dict[str, Any]) -> None:
    assert config(files, output_action="APPEND_ROW").output_action == "append_row"
    assert config(files, output_action="Summary_Only").output_action == "summary_only"
    with pytest.raises(InvalidInputError, match=r"'append_row' .* or 'summary_only'"):
        config(files, output_action="append")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"error_threshold": -2}, "error_threshold -2 is not a whole number greater than or equal to -1"),
        ({"error_threshold": 1.5}, "error_threshold 1.5"),
        ({"error_threshold": True}, "error_threshold True"),
        ({"error_threshold": PipelineParameter("t", 3)}, "cannot be a PipelineParameter"),
        ({"allowed_failed_count": -2}, "allowed_failed_count -2"),
        ({"allowed_failed_percent": 101}, "allowed_failed_percent 101 must be a number from 0 to 100"),
        ({"allowed_failed_percent": "5"}, "allowed_failed_percent '5'"),
        ({"append_row_file_name": "a/b.txt"}, "not a valid file name"),
        ({"append_row_file_name": "out|put.txt"}, r"found \|"),
        ({"partition_keys": ["store"]}, "partition_keys is not supported yet.*Use mini_batch_size"),
        ({"environment_variables": {"A=B": "x"}}, "cannot be set in a process"),
        ({"environment_variables": ["A"]}, "must be a dict"),
        ({"environment_variables": {"RUNYARD_TOKEN": "x"}}, "may not set 'RUNYARD_TOKEN'.*runyard sets"),
        ({"environment_variables": {"AZUREML_RUN_ID": "x"}}, "may not set 'AZUREML_RUN_ID'"),
        ({"environment_variables": {"AZUREML_ARM_SUBSCRIPTION": "x"}}, "AZUREML_ARM_"),
        ({"mini_batch_size": "ten"}, "mini_batch_size 'ten' does not parse.*file count such as 10.*'10MB'"),
        ({"mini_batch_size": "0"}, "must be at least 1"),
        ({"mini_batch_size": 2.5}, "mini_batch_size 2.5"),
        ({"node_count": 0}, "node_count must be at least 1"),
        ({"node_count": None}, "needs node_count"),
        ({"process_count_per_node": 0}, "process_count_per_node must be at least 1"),
        ({"logging_level": "LOUD"}, "logging_level 'LOUD' must be one of WARNING, INFO, DEBUG"),
        ({"run_invocation_timeout": 0}, "run_invocation_timeout must be more than 0 seconds"),
        ({"run_max_try": 0}, "run_max_try must be at least 1"),
        ({"run_max_try": True}, "run_max_try True is not a number"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(
    files: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        config(files, **kwargs)


def test_good_literal_settings(files: dict[str, Any]) -> None:
    for size in (10, "10", "1024", "1024KB", "10mb", "1GB"):
        assert config(files, mini_batch_size=size).mini_batch_size == size
    c = config(
        files,
        logging_level="debug",
        run_invocation_timeout=2,
        run_max_try=1,
        process_count_per_node=2,
        allowed_failed_count=-1,
        allowed_failed_percent=12.5,
        append_row_file_name="scores.txt",
        environment_variables={"MODEL": "digits", "N": 3},
        error_threshold=-1,
    )
    assert c.environment_variables == {"MODEL": "digits", "N": "3"}


def test_the_six_tunable_settings_take_pipeline_parameters_checked_later(files: dict[str, Any]) -> None:
    """A parameter's default is checked when the pipeline is validated (it may be overridden at submit)."""
    params = {name: PipelineParameter(name, "nonsense") for name in TUNABLE_SETTINGS}
    c = config(files, **params)
    assert [p.name for p in c.parameters()] == list(params)


def test_entry_script_inside_source_directory(files: dict[str, Any], tmp_path: Path) -> None:
    c = config(files, entry_script="sub/deep.py")
    assert (c.entry_script, c.source_directory) == ("sub/deep.py", str(files["src"]))
    with pytest.raises(InvalidInputError, match="does not exist in source_directory"):
        config(files, entry_script="missing.py")
    (tmp_path / "outside.py").write_text("")
    with pytest.raises(InvalidInputError, match="lies outside source_directory"):
        config(files, entry_script="../outside.py")
    with pytest.raises(InvalidInputError, match="is not a folder"):
        config(files, source_directory=tmp_path / "nowhere")
    with pytest.raises(InvalidInputError, match="needs entry_script"):
        config(files, entry_script=" ")


def test_entry_script_without_source_directory_is_any_path(
    files: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """v1: without source_directory the entry script may be any path; its folder is then the source."""
    c = config(files, entry_script=str(files["src"] / "sub" / "deep.py"), source_directory=None)
    assert (c.entry_script, Path(c.source_directory)) == ("deep.py", (files["src"] / "sub").resolve())
    monkeypatch.chdir(files["src"])
    c = config(files, entry_script="sub/deep.py", source_directory=None)
    assert Path(c.source_directory) == (files["src"] / "sub").resolve()
    with pytest.raises(InvalidInputError, match="is not a file"):
        config(files, entry_script="nope.py", source_directory=None)


# -- save_to_yaml / load_yaml -------------------------------------------------------------------------


def test_yaml_round_trip_keeps_every_setting_and_parameter(files: dict[str, Any], tmp_path: Path) -> None:
    env = Environment("score-env")
    env.environment_variables = {"FROM_ENV": "1"}
    original = config(
        files,
        environment=env,
        mini_batch_size=PipelineParameter("batch", "5"),
        process_count_per_node=PipelineParameter("workers", 2),
        node_count=1,
        logging_level="DEBUG",
        run_invocation_timeout=7,
        run_max_try=2,
        description="score the digits",
        append_row_file_name="scores.txt",
        allowed_failed_count=4,
        allowed_failed_percent=5.5,
        environment_variables={"MODEL": "digits"},
        output_action="Append_Row",
    )
    path = tmp_path / "prc.yml"
    original.save_to_yaml(path)
    loaded = ParallelRunConfig.load_yaml(None, path)
    for name in (
        "entry_script",
        "source_directory",
        "error_threshold",
        "output_action",
        "compute_target",
        "node_count",
        "logging_level",
        "run_invocation_timeout",
        "run_max_try",
        "description",
        "append_row_file_name",
        "allowed_failed_count",
        "allowed_failed_percent",
        "environment_variables",
    ):
        assert getattr(loaded, name) == getattr(original, name), name
    for name in ("mini_batch_size", "process_count_per_node"):
        assert (getattr(loaded, name).name, getattr(loaded, name).default_value) == (
            getattr(original, name).name,
            getattr(original, name).default_value,
        )
    assert loaded.environment.to_definition() == env.to_definition()


def test_yaml_keeps_a_registered_environment_by_name_and_version(
    files: dict[str, Any], tmp_path: Path, sqlite_workspace: Workspace
) -> None:
    env = Environment("score-env")
    env.environment_variables = {"V": "1"}
    first = env.register(sqlite_workspace)
    env.environment_variables = {"V": "2"}
    env.register(sqlite_workspace)  # version 2: the file still means version 1
    path = tmp_path / "prc.yml"
    config(files, environment=first).save_to_yaml(path)
    text = path.read_text()
    assert "environment_name: score-env" in text and "environmentVariables" not in text
    loaded = ParallelRunConfig.load_yaml(sqlite_workspace, path)
    assert (loaded.environment.version, loaded.environment.environment_variables) == ("1", {"V": "1"})


def test_load_yaml_names_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "other.yml"
    path.write_text("something: 1\n")
    with pytest.raises(InvalidInputError, match="no 'parallel_run_config' mapping"):
        ParallelRunConfig.load_yaml(None, path)

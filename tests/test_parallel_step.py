"""ParallelRunStep as a user writes it: its inputs, output and arguments, the name rule, and the graph
it compiles to.

No pipeline runs here: the rules are checked when the step is
written or when the pipeline is validated, so these tests build real datasets over real local files and
compile real graphs, then parse them as the scheduler does (engine/graph_spec.parse_graph).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from parallel_helpers import compiled, config, parallel_of, prs_files
from runyard import Workspace
from runyard.data.consumption import DatasetConsumptionConfig
from runyard.engine.graph_parallel import ParallelSpec, check_settings, resolve_settings
from runyard.engine.graph_spec import parse_graph
from runyard.errors import InvalidInputError
from runyard.parallel import ParallelRunStep
from runyard.parallel.step import RESERVED_ARGUMENTS, input_kind, step_name_problem
from runyard.pipeline import (
    InputBinding,
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
)
from runyard.pipeline.graph import compile_graph


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Any]:
    return prs_files(tmp_path)


# -- ParallelRunStep's inputs, output and arguments ----------------------------------------------------


def test_input_kinds(files: dict[str, Any]) -> None:
    out = OutputFileDatasetConfig("prepared")
    param = PipelineParameter("table_param", files["table"])
    assert input_kind(files["file"].as_named_input("images")) == ("file", "direct")
    assert input_kind(files["file"].as_named_input("images").as_mount()) == ("file", "mount")
    assert input_kind(files["file"]) == ("file", "mount")
    assert input_kind(files["table"]) == ("tabular", "direct")
    assert input_kind(DatasetConsumptionConfig("rows", param)) == ("tabular", "direct")
    assert input_kind(out.as_input()) == ("file", "mount")
    assert input_kind(out.read_delimited_files().as_input()) == ("tabular", "direct")
    assert input_kind(PipelineData("p").as_input()) == ("file", "mount")
    with pytest.raises(InvalidInputError, match="cannot partition a str"):
        input_kind("/data/images")


def test_inputs_must_be_one_kind_and_not_empty(files: dict[str, Any]) -> None:
    c = config(files, output_action="summary_only")
    with pytest.raises(InvalidInputError, match="non-empty list"):
        ParallelRunStep("score-digits", c, [])
    with pytest.raises(InvalidInputError, match="mix FileDatasets and TabularDatasets"):
        ParallelRunStep(
            "score-digits", c, [files["file"].as_named_input("a"), files["table"].as_named_input("b")]
        )
    with pytest.raises(InvalidInputError, match="cannot partition a str"):
        ParallelRunStep("score-digits", c, ["images"])
    producer_output = OutputFileDatasetConfig("rows")
    mounted_table = InputBinding(
        producer_output, "rows", "mount", producer_output.read_delimited_files().read
    )
    with pytest.raises(InvalidInputError, match="a tabular input is read directly"):
        ParallelRunStep("score-digits", c, [mounted_table])


def test_output_is_required_for_append_row_only(files: dict[str, Any]) -> None:
    images = files["file"].as_named_input("images")
    with pytest.raises(InvalidInputError, match="'append_row' writes one file into the step's output"):
        ParallelRunStep("score-digits", config(files), [images])
    assert (
        ParallelRunStep("score-digits", config(files, output_action="summary_only"), [images]).outputs == []
    )
    with pytest.raises(
        InvalidInputError, match="output must be a PipelineData or an OutputFileDatasetConfig"
    ):
        ParallelRunStep("score-digits", config(files), [images], output="out")  # type: ignore[arg-type]


@pytest.mark.parametrize("flag", ["--mini_batch_size", "--error_threshold=3", "--output", "-run_max_try"])
def test_reserved_arguments_are_refused(files: dict[str, Any], flag: str) -> None:
    with pytest.raises(
        InvalidInputError, match=r"is a setting of ParallelRunConfig.*Reserved: mini_batch_size"
    ):
        ParallelRunStep(
            "score-digits",
            config(files, output_action="summary_only"),
            [files["file"].as_named_input("images")],
            arguments=[flag, "5"],
        )
    assert len(RESERVED_ARGUMENTS) == 12


def test_rank_mini_batch_count_is_not_supported(files: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=r"--rank_mini_batch_count .* is not supported"):
        ParallelRunStep(
            "score-digits",
            config(files, output_action="summary_only"),
            [files["file"].as_named_input("images")],
            arguments=["--rank_mini_batch_count", "4"],
        )


def test_side_inputs_are_data_and_not_also_inputs(files: dict[str, Any]) -> None:
    c = config(files, output_action="summary_only")
    images = files["file"].as_named_input("images")
    with pytest.raises(InvalidInputError, match="both an input and a side input"):
        ParallelRunStep("score-digits", c, [images], side_inputs=[images])
    with pytest.raises(InvalidInputError, match="side input str is not data"):
        ParallelRunStep("score-digits", c, [images], side_inputs=["labels.csv"])


def test_the_step_is_a_python_script_step_of_the_entry_script(files: dict[str, Any]) -> None:
    out = PipelineData("scores")
    images = files["file"].as_named_input("images")
    labels = files["table"].as_named_input("labels")
    step = ParallelRunStep(
        "score-digits",
        config(files),
        [images],
        out,
        side_inputs=[labels],
        arguments=["--k", 3],
        allow_reuse=False,
    )
    assert isinstance(step, PythonScriptStep) and step.step_type == "ParallelRunStep"
    assert (step.script_name, step.source_directory) == ("score.py", str(files["src"]))
    assert step.inputs == [images, labels] and step.outputs == [out]
    assert step.arguments == ["--k", 3] and step.allow_reuse is False
    assert step.environment.name == "score-env" and step.compute_target == "local"


# -- the name rule (at validation) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("Score Digits", "score-digits"),
        ("score_digits", "score-digits"),
        ("ab", "ab-step"),
        ("1st-batch", "st-batch"),
        ("score-", "score"),
        ("x" * 40, "x" * 32),
    ],
)
def test_bad_names_are_reported_at_validation_with_the_rule_and_a_fix(
    files: dict[str, Any], name: str, suggestion: str
) -> None:
    step = ParallelRunStep(
        name, config(files), [files["file"].as_named_input("images")], PipelineData("scores")
    )
    _graph, errors = compiled(step)
    assert errors == [step_name_problem(name)]
    assert "^[a-z]([-a-z0-9]*[a-z0-9])?$" in errors[0] and "3 to 32 characters" in errors[0]
    assert f"name={suggestion!r}" in errors[0]
    assert step_name_problem(suggestion) is None


def test_good_names_pass() -> None:
    for name in ("abc", "score-digits", "a1-b2", "a" * 32, "a--b"):
        assert step_name_problem(name) is None


# -- compiling ----------------------------------------------------------------------------------------


def test_compiled_graph_carries_the_parallel_entry_with_tokens(files: dict[str, Any]) -> None:
    batch = PipelineParameter("batch", 5)
    c = config(
        files,
        mini_batch_size=batch,
        process_count_per_node=2,
        run_invocation_timeout=PipelineParameter("timeout", 30),
        environment_variables={"MODEL": "digits"},
        allowed_failed_percent=10,
    )
    labels = files["table"].as_named_input("labels")
    step = ParallelRunStep(
        "score-digits",
        c,
        [files["file"].as_named_input("images")],
        OutputFileDatasetConfig("scores"),
        side_inputs=[labels],
        arguments=["--labels", labels, "--size", batch],
    )
    graph, errors = compiled(step)
    assert errors == []
    entry = graph["steps"][0]
    assert (entry["type"], entry["script"]) == ("ParallelRunStep", "score.py")
    assert [d["name"] for d in entry["datasets"]] == ["images", "labels"]
    assert entry["arguments"] == [
        {"literal": "--labels"},
        {"input": "labels"},
        {"literal": "--size"},
        {"param": "batch"},
    ]
    assert entry["parallel"] == {
        "kind": "file",
        "inputs": ["images"],
        "side_inputs": ["labels"],
        "output": "scores",
        "output_action": "append_row",
        "append_row_file_name": "parallel_run_step.txt",
        "error_threshold": 10,
        "allowed_failed_percent": 10.0,
        "mini_batch_size": {"param": "batch"},
        "node_count": {"literal": "1"},
        "process_count_per_node": {"literal": "2"},
        "logging_level": {"literal": "INFO"},
        "run_invocation_timeout": {"param": "timeout"},
        "run_max_try": {"literal": "3"},
        "environment_variables": {"MODEL": "digits"},
    }
    assert graph["parameters"] == {"batch": {"default": 5}, "timeout": {"default": 30}}
    spec = parse_graph(graph).steps[0].parallel
    assert isinstance(spec, ParallelSpec)
    settings = resolve_settings(spec, {"batch": 5, "timeout": 30})
    assert (settings.mini_batch_size, settings.run_invocation_timeout, settings.process_count_per_node) == (
        5,
        30,
        2,
    )


def test_a_graph_or_job_file_cannot_set_the_workers_identity_or_impossible_values() -> None:
    """The graph is input the scheduler does not trust: its environment_variables may not name the
    variables that say which run a process is (RUNYARD_*, AZUREML_RUN_ID, AZUREML_ARM_*); and
    check_settings (what the driver runs on its job file) refuses every value resolve_settings would."""
    base = {"kind": "file", "inputs": ["images"], "output": "o", "output_action": "append_row"}
    for name in ("RUNYARD_RUN_ID", "AZUREML_RUN_ID", "AZUREML_ARM_RESOURCEGROUP"):
        with pytest.raises(ValidationError, match=f"may not set '{name}'"):
            ParallelSpec.model_validate({**base, "error_threshold": 1, "environment_variables": {name: "x"}})
    good = resolve_settings(ParallelSpec.model_validate({**base, "error_threshold": 1}), {})
    check_settings(good)
    for change, named in [
        ({"append_row_file_name": "../x.txt"}, "append_row_file_name"),
        ({"process_count_per_node": 0}, "process_count_per_node"),
        ({"mini_batch_size": "10"}, "mini_batch_size"),
        ({"run_invocation_timeout": float("inf")}, "run_invocation_timeout"),
        ({"logging_level": "LOUD"}, "logging_level"),
        ({"output_action": "append"}, "output_action"),
        ({"allowed_failed_percent": 150.0}, "allowed_failed_percent"),
        ({"environment_variables": {"A=B": "x"}}, "cannot be set in a process"),
    ]:
        with pytest.raises(InvalidInputError, match=named):
            check_settings(dataclasses.replace(good, **change))


def test_a_table_from_an_upstream_output_is_partitioned_by_size(
    files: dict[str, Any], tmp_path: Path
) -> None:
    prep_src = tmp_path / "prep"
    prep_src.mkdir()
    (prep_src / "prep.py").write_text("print('prepare')\n")
    rows = OutputFileDatasetConfig("rows")
    prep = PythonScriptStep("prep.py", name="prep", arguments=[rows], source_directory=prep_src)
    step = ParallelRunStep(
        "score-rows",
        config(files, mini_batch_size="1MB", output_action="summary_only"),
        [rows.read_delimited_files()],
    )
    graph, errors = compiled(prep, step)
    assert errors == []
    entry = next(s for s in graph["steps"] if s["name"] == "score-rows")
    assert entry["inputs"][0]["mode"] == "direct" and entry["inputs"][0]["step"] == "prep"
    assert parallel_of(graph, "score-rows")["kind"] == "tabular"
    assert parallel_of(graph, "score-rows")["inputs"] == [entry["inputs"][0]["name"]]
    assert "output" not in parallel_of(graph, "score-rows")
    assert parse_graph(graph).step("score-rows").parallel.output is None  # type: ignore[union-attr]


def test_pipeline_data_of_an_upstream_step_is_a_file_input(files: dict[str, Any], tmp_path: Path) -> None:
    prep_src = tmp_path / "prep"
    prep_src.mkdir()
    (prep_src / "prep.py").write_text("print('prepare')\n")
    images = PipelineData("images")
    prep = PythonScriptStep(
        "prep.py", name="prep", arguments=[images], outputs=[images], source_directory=prep_src
    )
    step = ParallelRunStep("score-digits", config(files), [images], PipelineData("scores"))
    graph, errors = compiled(step, prep)
    assert errors == [], errors
    assert parallel_of(graph)["inputs"] == ["images"] and parallel_of(graph)["kind"] == "file"
    parse_graph(graph)


@pytest.mark.parametrize(
    ("kwargs", "values", "message"),
    [
        (
            {"node_count": 3},
            {},
            "node_count=3 needs several machines; local compute runs one node. Use node_count=1",
        ),
        ({"node_count": PipelineParameter("nodes", 1)}, {"nodes": 2}, "node_count=2 needs several machines"),
        ({"mini_batch_size": "1MB"}, {}, "mini_batch_size '1MB' is a size, but the input is a FileDataset"),
        (
            {"mini_batch_size": PipelineParameter("batch", "lots")},
            {},
            "Step 'score-digits', PipelineParameter 'batch': mini_batch_size 'lots' does not parse",
        ),
        (
            {"run_max_try": PipelineParameter("tries", 3)},
            {"tries": 0},
            "PipelineParameter 'tries': run_max_try must be at least 1",
        ),
        ({"logging_level": PipelineParameter("level", "LOUD")}, {}, "logging_level 'LOUD' must be one of"),
    ],
)
def test_settings_that_cannot_run_are_validation_errors(
    files: dict[str, Any], kwargs: dict[str, Any], values: dict[str, Any], message: str
) -> None:
    step = ParallelRunStep(
        "score-digits", config(files, **kwargs), [files["file"].as_named_input("images")], PipelineData("o")
    )
    _graph, errors = compiled(step, **values)
    assert len(errors) == 1 and message in errors[0], errors
    assert errors[0].startswith("Step 'score-digits'")


def test_node_count_on_a_named_target_runs_one_node_with_one_warning(
    files: dict[str, Any], sqlite_workspace: Workspace
) -> None:
    """v1 samples use node_count 2-4 on an AmlCompute cluster: runyard runs that target on this machine,
    so the step is valid, warned once, and node_count stays out of the fingerprint ("local": an error)."""
    step = ParallelRunStep(
        "score-digits",
        config(files, node_count=3, process_count_per_node=2, compute_target="cpu-cluster"),
        [files["file"].as_named_input("images")],
        PipelineData("o"),
    )
    graph, errors, notes = compile_graph(
        [step], description=None, default_source_directory=None, parameter_values=None
    )
    assert errors == []
    assert notes == [
        "Step 'score-digits': node_count=3 runs as one node on this machine (process_count_per_node=2 "
        "workers); several nodes need the Ray compute target."
    ]
    assert parallel_of(graph)["node_count"] == {"literal": "3"}
    with pytest.warns(UserWarning, match="node_count=3 runs as one node") as seen:
        assert Pipeline(sqlite_workspace, [step]).validate() == []
    assert len([w for w in seen if "node_count" in str(w.message)]) == 1


def test_a_dataset_parameter_given_the_other_kind_at_submit_is_refused(files: dict[str, Any]) -> None:
    param = PipelineParameter("images_param", files["file"])
    step = ParallelRunStep(
        "score-digits", config(files), [DatasetConsumptionConfig("images", param)], PipelineData("o")
    )
    graph, errors = compiled(step)
    assert errors == [] and parallel_of(graph)["inputs"] == ["images"]
    _graph, errors = compiled(step, images_param=files["table"])
    assert errors == [
        "Step 'score-digits': pipeline_parameters gives 'images_param' a tabular dataset, but the step "
        "partitions file inputs; pass a file dataset."
    ]


def test_pipeline_validate_reports_every_problem_at_once(
    files: dict[str, Any], sqlite_workspace: Workspace
) -> None:
    step = ParallelRunStep(
        "Score Digits",
        config(files, node_count=2),
        [files["file"].as_named_input("images")],
        PipelineData("o"),
    )
    errors = Pipeline(sqlite_workspace, [step]).validate()
    assert len(errors) == 2
    assert "name='score-digits'" in errors[0] and "node_count=2 needs several machines" in errors[1]
    step.name = "score-digits"
    step.parallel_run_config.node_count = 1
    assert Pipeline(sqlite_workspace, [step]).validate() == []
    assert Pipeline(sqlite_workspace, [step]).graph["steps"][0]["parallel"]["kind"] == "file"


def test_an_unnamed_output_gets_its_graph_name_before_the_parallel_entry(files: dict[str, Any]) -> None:
    step = ParallelRunStep("score-digits", config(files), [files["file"]], OutputFileDatasetConfig())
    graph, errors = compiled(step)
    assert errors == []
    entry = graph["steps"][0]
    assert parallel_of(graph)["output"] == entry["outputs"][0]["name"] == "score_digits_output_0"
    assert parallel_of(graph)["inputs"] == [entry["datasets"][0]["name"]]
    parse_graph(graph)

"""The typed pipeline graph (engine/graph_spec.py): what a scheduler accepts from a stored record.

A graph compiled by runyard round-trips unchanged; a graph written by hand into the store is refused
with a sentence that says what is wrong: another runyard's version, interpreter flags or paths
outside the snapshot as a script, references to steps, outputs or parameters that do not exist.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.engine.graph_spec import GRAPH_VERSION, GraphError, parse_graph, script_problem
from runyard.pipeline import Pipeline, PipelineData, PipelineParameter, PythonScriptStep


@pytest.fixture
def graph(sqlite_workspace: Workspace, tmp_path: Path) -> dict[str, Any]:
    """A real compiled two-step graph with a parameter, a data dependency and run_after."""
    src = SourceDir(tmp_path / "src").gen({"prep.py": "print(1)", "sub/train.py": "print(2)"})
    data = PipelineData("prepared")
    lr = PipelineParameter("lr", default_value=0.1)
    prep = PythonScriptStep(
        "prep.py", name="prep", arguments=["--out", data], outputs=[data], source_directory=src
    )
    train = PythonScriptStep(
        "sub/train.py",
        name="train",
        arguments=["--data", data, "--lr", lr],
        inputs=[data],
        source_directory=src,
    )
    train.run_after(prep)
    return Pipeline(sqlite_workspace, [train]).graph


def test_compiled_graph_round_trips_unchanged(graph: dict[str, Any]) -> None:
    spec = parse_graph(graph)
    assert spec.to_json() == graph
    assert spec.version == GRAPH_VERSION
    assert spec.step("train").script_path == "sub/train.py"
    assert [a.model_dump() for a in spec.step("train").arguments][-1] == {"param": "lr"}


@pytest.mark.parametrize(
    ("version", "words"),
    [
        (GRAPH_VERSION + 1, "a newer runyard"),
        (0, "an older runyard"),
        (None, "no valid version"),
        ("1", "no valid version"),
        (True, "no valid version"),  # True == 1 in Python: it used to pass
        (1.0, "no valid version"),
    ],
)
def test_version_is_checked(graph: dict[str, Any], version: Any, words: str) -> None:
    graph["version"] = version
    with pytest.raises(GraphError, match=words) as info:
        parse_graph(graph)
    assert "this runyard reads" in str(info.value)


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("-c", "interpreter option"),
        ("-m", "interpreter option"),
        ("-", "interpreter option"),
        ("-Wignore", "interpreter option"),
        ("/etc/passwd", "absolute path"),
        ("../outside.py", "'..'"),
        ("sub/../../outside.py", "'..'"),
        ("", "empty"),
        (".", "'..'"),
    ],
)
def test_scripts_that_are_not_relative_files_are_refused(
    graph: dict[str, Any], script: str, words: str
) -> None:
    graph["steps"][0]["script"] = script
    with pytest.raises(GraphError, match=words):
        parse_graph(graph)
    assert script_problem("train.py") is None and script_problem("./a/b.py") is None


def test_scripts_must_be_files_of_their_snapshot(graph: dict[str, Any]) -> None:
    spec = parse_graph(graph)
    snap = spec.steps[0].source.snapshot
    assert snap is None  # not yet snapshotted: a step without a snapshot cannot run
    with pytest.raises(GraphError, match="no source snapshot"):
        spec.check_scripts({})
    for step in graph["steps"]:
        step["source"]["snapshot"] = "a" * 64
    spec = parse_graph(graph)
    with pytest.raises(GraphError, match="is not a file of its snapshot"):
        spec.check_scripts({"a" * 64: {"prep.py": "0" * 64}})
    spec.check_scripts({"a" * 64: {"prep.py": "0" * 64, "sub/train.py": "1" * 64}})


def _mutations() -> list[tuple[str, Any, str]]:
    def set_(path: str, value: Any):  # type: ignore[no-untyped-def]
        def apply(g: dict[str, Any]) -> None:
            *keys, last = path.split(".")
            node: Any = g
            for key in keys:
                node = node[int(key)] if key.isdigit() else node[key]
            node[last] = value

        return apply

    return [
        ("no steps", set_("steps", []), "no steps"),
        ("steps not a list", set_("steps", "x"), "steps"),
        ("unknown key", set_("steps.0.shell", "rm -rf /"), "Extra inputs are not permitted"),
        ("argument token", set_("steps.0.arguments", [{"code": "x"}]), "arguments"),
        ("two kinds in a token", set_("steps.0.arguments", [{"literal": "a", "param": "lr"}]), "arguments"),
        ("undeclared parameter", set_("steps.1.arguments", [{"param": "nope"}]), "parameter 'nope'"),
        ("input that is not bound", set_("steps.1.arguments", [{"input": "other"}]), "input 'other'"),
        ("missing producer", set_("steps.1.inputs.0.step", "ghost"), "step 'ghost'"),
        ("output name with a slash", set_("steps.0.outputs.0.name", "../x"), "outputs"),
        ("destination with ..", set_("steps.0.outputs.0.destination", "a/../../b"), "'..'"),
        # the datastore's root: with overwrite=True the step would replace the whole datastore
        ("destination empty", set_("steps.0.outputs.0.destination", ""), "datastore's root"),
        ("destination dot", set_("steps.0.outputs.0.destination", "."), "datastore's root"),
        ("destination dot slash", set_("steps.0.outputs.0.destination", "./"), "datastore's root"),
        ("destination slash", set_("steps.0.outputs.0.destination", "/"), "datastore's root"),
        ("destination a/./", set_("steps.0.outputs.0.destination", "./a/.."), "'..'"),
        ("destination .//.", set_("steps.0.outputs.0.destination", ".//."), "datastore's root"),
        ("param key empty", set_("steps.0.params", {"": {"literal": "x"}}), "params"),
        ("param key with NUL", set_("steps.0.params", {"a\x00b": {"literal": "x"}}), "params"),
        ("param key with =", set_("steps.0.params", {"A=B": {"literal": "x"}}), "params"),
        ("param key too long", set_("steps.0.params", {"k" * 300: {"literal": "x"}}), "params"),
        ("run_after unknown", set_("steps.1.run_after", ["ghost"]), "runs after 'ghost'"),
        ("cycle", set_("steps.0.run_after", ["train"]), "cycle"),
        ("duplicate names", set_("steps.1.name", "prep"), "two steps are named"),
    ]


@pytest.mark.parametrize(("what", "mutate", "words"), _mutations(), ids=[m[0] for m in _mutations()])
def test_malformed_graphs_are_refused_with_the_reason(
    graph: dict[str, Any], what: str, mutate: Any, words: str
) -> None:
    broken = copy.deepcopy(graph)
    names = [s["name"] for s in broken["steps"]]
    if names[0] != "prep":  # compile order is not fixed: make index 0 the producer for the paths above
        broken["steps"].reverse()
    mutate(broken)
    with pytest.raises(GraphError, match=words):
        parse_graph(broken)


def test_a_real_destination_and_param_names_are_accepted(graph: dict[str, Any]) -> None:
    """The new checks refuse only what is broken: a sub-folder destination and ordinary keys pass."""
    graph = copy.deepcopy(graph)
    prep = next(s for s in graph["steps"] if s["name"] == "prep")
    prep["outputs"][0]["destination"] = "./out/{run-id}/{output-name}"
    prep["params"] = {"learning_rate": {"literal": "0.1"}, "with space": {"literal": "y"}}
    spec = parse_graph(graph)
    assert spec.step("prep").outputs[0].destination == "./out/{run-id}/{output-name}"
    assert set(spec.step("prep").params) == {"learning_rate", "with space"}


@pytest.mark.parametrize("data", [None, [], "graph", {"version": GRAPH_VERSION}])
def test_not_a_graph_at_all(data: Any) -> None:
    with pytest.raises(GraphError):
        parse_graph(data)


def test_compile_refuses_what_the_scheduler_would_refuse(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    """A file named '-c' in the source folder passes the exists-check, but never becomes `python -c`."""
    src = SourceDir(tmp_path / "src").gen({"-c": "print(1)"})
    step = PythonScriptStep("-c", name="flag", arguments=["import os"], source_directory=src)
    errors = Pipeline(sqlite_workspace, [step]).validate()
    assert any("interpreter option" in e for e in errors), errors


def _with_definition(graph: dict[str, Any], definition: dict[str, Any]) -> dict[str, Any]:
    graph = copy.deepcopy(graph)
    graph["steps"][0]["environment"] = {"name": "train-env", "python": "3.11", "definition": definition}
    return graph


DEFINITION = {
    "name": "train-env",
    "environmentVariables": {"MODE": "fast"},
    "python": {
        "userManagedDependencies": False,
        "condaDependencies": {"dependencies": ["python=3.11", {"pip": ["tabulate==0.9.0"]}]},
    },
}


def test_version_3_steps_carry_their_environment_definition_and_older_graphs_still_read(
    graph: dict[str, Any],
) -> None:
    assert GRAPH_VERSION >= 3
    spec = parse_graph(_with_definition(graph, DEFINITION))
    assert spec.steps[0].environment.definition == DEFINITION
    assert "definition" not in spec.step("train").to_json()["environment"]  # none: the JSON stays as it was
    older = copy.deepcopy(graph)
    older["version"] = 2
    assert parse_graph(older).version == 2
    claims = _with_definition(graph, DEFINITION)
    claims["version"] = 2
    with pytest.raises(GraphError, match="a version 2 graph has no environment definitions"):
        parse_graph(claims)


@pytest.mark.parametrize(
    ("definition", "words"),
    [
        ({"python": {"userManagedDependencies": "yes"}}, "python.userManagedDependencies"),
        ({"python": {"condaDependencies": {"dependencies": [{"pip": "x"}]}}}, "dependencies"),
        ({"environmentVariables": {"A=B": "1"}}, "cannot be set in a process"),
        ({"environmentVariables": {"A": "nul\x00"}}, "cannot be set in a process"),
    ],
)
def test_a_forged_environment_definition_is_refused(
    graph: dict[str, Any], definition: dict[str, Any], words: str
) -> None:
    with pytest.raises(GraphError, match=words):
        parse_graph(_with_definition(graph, definition))

"""Regressions found by running Microsoft's v1 samples on runyard.

1. A FileDataset of ONE file (no transforms) reaches the job as that file's path (argument,
   AZUREML_DATAREFERENCE_<name>, run.input_datasets), mounted or downloaded, in script runs and steps,
   as v1's DatasetContextManager does; a folder that holds one file stays a folder.
2. An unnamed OutputFileDatasetConfig of a step whose name has a space can be submitted, and a graph
   that is refused says why in the graph's terms (no pydantic union noise).
3. register_on_complete added to the output of a step that is then reused registers the reused files
   (once: a later reuse finds the same version) and records the lineage.
4. Headerless CSVs read with header=True across files: repeated header names are made unique as pandas
   does, never pyarrow's "Can't unify schema with duplicate field names".
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import SourceDir
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.data.dataset import Dataset
from runyard.data.tabular_read import _concat, unique_names
from runyard.engine.graph_spec import GraphError, parse_graph
from runyard.errors import InvalidInputError
from runyard.pipeline import OutputFileDatasetConfig, Pipeline, PipelineRun, PythonScriptStep

pytestmark = pytest.mark.usefixtures("no_stray_processes")

SHOW = """
import json, os, sys
from runyard import Run
given = {k: v for k, v in Run.get_context().input_datasets.items()}
for name, arg in zip(sys.argv[1::2], sys.argv[2::2]):
    print("SEEN", json.dumps({
        "name": name, "arg": arg, "isfile": os.path.isfile(arg),
        "env": os.environ["AZUREML_DATAREFERENCE_" + name], "given": given[name],
        "text": open(arg).read() if os.path.isfile(arg) else sorted(os.listdir(arg)),
    }))
"""


def _put(ws: Workspace, files: dict[str, str]) -> None:
    store = ws.get_default_datastore()
    for rel, text in files.items():
        target = store.local_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _seen(log: str) -> dict[str, dict[str, object]]:
    found = [json.loads(line.split("SEEN ", 1)[1]) for line in log.splitlines() if "SEEN {" in line]
    return {item["name"]: item for item in found}


def _script_run(ws: Workspace, src: SourceDir, arguments: list[object]) -> str:
    src.gen({"show.py": SHOW})
    run = Experiment(ws, "samples").submit(ScriptRunConfig(src, "show.py", arguments=arguments))
    details = run.wait_for_completion(raise_on_error=False)
    log = run.read_log().decode()
    assert details["status"] == "Completed", log[-3000:]
    return log


def test_a_one_file_dataset_reaches_a_script_run_as_the_file(
    workspace: Workspace, source_dir: SourceDir
) -> None:
    _put(workspace, {"one/iris.csv": "a,b\n1,2\n", "folder/only.csv": "x\n"})
    store = workspace.get_default_datastore()
    one = Dataset.File.from_files((store, "one/iris.csv"))
    registered = one.register(workspace, "iris-one")
    folder = Dataset.File.from_files((store, "folder"))
    log = _script_run(
        workspace,
        source_dir,
        [
            *["m", one.as_named_input("m").as_mount()],
            *["d", one.as_named_input("d").as_download()],
            *["r", registered.as_named_input("r").as_mount()],
            *["f", folder.as_named_input("f").as_mount()],
        ],
    )
    seen = _seen(log)
    for name in ("m", "d", "r"):
        item = seen[name]
        assert item["isfile"] and str(item["arg"]).endswith("/iris.csv"), item
        assert item["env"] == item["arg"] == item["given"], item  # v1: path + to_path()[0] everywhere
        assert item["text"] == "a,b\n1,2\n"
    assert seen["f"]["isfile"] is False and seen["f"]["text"] == ["only.csv"]  # a folder stays a folder


def _pipeline_ok(pipeline: Pipeline) -> PipelineRun:
    run = pipeline.submit("samples", show_output=False)
    status = run.wait_for_completion(show_output=False, timeout_seconds=90)
    assert status == "Finished", [(s.name, s.get_details().get("error")) for s in run.get_steps()]
    return run


def test_a_one_file_dataset_reaches_a_pipeline_step_as_the_file(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    _put(ws, {"one/iris.csv": "a,b\n1,2\n", "glob/p-1.csv": "g\n"})
    store = ws.get_default_datastore()
    one = Dataset.File.from_files((store, "one/iris.csv"))
    glob = Dataset.File.from_files((store, "glob/*.csv"))  # a glob keeps its folder, as in v1
    src = SourceDir(tmp_path / "src").gen({"show.py": SHOW})
    step = PythonScriptStep(
        "show.py",
        name="show step",
        arguments=[
            *["m", one.as_named_input("m").as_mount()],
            *["d", one.as_named_input("d").as_download()],
            *["g", glob.as_named_input("g").as_mount()],
        ],
        source_directory=src,
    )
    run = _pipeline_ok(Pipeline(ws, [step]))
    seen = _seen(str(run.find_step_run("show step")[0].get_job_log()))
    for name in ("m", "d"):
        assert seen[name]["isfile"] and str(seen[name]["arg"]).endswith("/iris.csv"), seen[name]
        assert seen[name]["env"] == seen[name]["arg"] == seen[name]["given"]
    assert seen["g"]["isfile"] is False and seen["g"]["text"] == ["p-1.csv"]


def test_an_unnamed_output_of_a_step_named_with_a_space_is_submitted(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    src = SourceDir(tmp_path / "src").gen(
        {
            "p.py": "import os, sys\nos.makedirs(sys.argv[1], exist_ok=True)\nopen(sys.argv[1] + '/a.txt', 'w').write('x')\n"
        }
    )
    out = OutputFileDatasetConfig()
    step = PythonScriptStep(name="prepare step", script_name="p.py", arguments=[out], source_directory=src)
    _pipeline_ok(Pipeline(sqlite_workspace, [step]))
    assert out.name == "prepare_step_output_0"
    written = list(
        sqlite_workspace.get_default_datastore().local_path("").rglob("prepare_step_output_0/a.txt")
    )
    assert [p.read_text() for p in written] == ["x"]


def test_a_refused_graph_says_why_in_its_own_terms() -> None:
    graph = {
        "version": 2,
        "steps": [
            {
                "name": "prepare step",
                "type": "python",
                "script": "p.py",
                "source": {"dir": "src"},
                "arguments": [{"output": "bad name"}, {"code": "x"}],
                "outputs": [],
            }
        ],
    }
    with pytest.raises(GraphError) as caught:
        parse_graph(graph)
    text = str(caught.value)
    assert "step 'prepare step' (arguments.0.output): 'bad name' is not a valid name: use letters" in text
    assert "step 'prepare step' (arguments.1): {'code': 'x'} is not an object with one of the keys" in text
    assert "LiteralArg" not in text and "Field required" not in text and "pattern" not in text


def test_register_on_complete_on_a_reused_step_registers_the_reused_files(
    workspace: Workspace, tmp_path: Path
) -> None:
    src = SourceDir(tmp_path / "src").gen(
        {
            "p.py": "import os, sys\nos.makedirs(sys.argv[1], exist_ok=True)\nopen(sys.argv[1] + '/a.txt', 'w').write('x')\n"
        }
    )

    def submit(register: bool) -> PipelineRun:
        out = OutputFileDatasetConfig("out")
        out = out.register_on_complete(name="reg_out") if register else out
        step = PythonScriptStep(name="p", script_name="p.py", arguments=[out], source_directory=src)
        return _pipeline_ok(Pipeline(workspace, [step]))

    first = submit(False)
    producer = first.find_step_run("p")[0].id
    second = submit(True)
    step = second.find_step_run("p")[0]
    assert step.get_details().get("status") == "Completed"
    report = {r["step"]: r for r in second.get_reuse_report()}["p"]
    assert report["reused"] and report["reusedFrom"] == producer
    registered = Dataset.get_by_name(workspace, "reg_out")
    assert registered.version == 1 and registered._record.run_id == producer  # the run that wrote them
    assert [Path(f["path"]).name for f in registered._record.files] == ["a.txt"]
    assert "registered reused output 'out' as dataset 'reg_out' version 1" in str(report["reason"])
    uses = [u for u in workspace.store.list_dataset_uses(run_id=step.id) if u.direction == "output"]
    assert [(u.name, u.dataset_id) for u in uses] == [("out", registered.id)]

    third = submit(True)  # reused again: the latest version already holds these files
    report = {r["step"]: r for r in third.get_reuse_report()}["p"]
    assert report["reused"] and "already dataset 'reg_out' version 1" in str(report["reason"])
    assert Dataset.get_by_name(workspace, "reg_out").version == 1


def test_unique_names_follow_pandas() -> None:
    assert unique_names(["1", "0", "0"]) == ["1", "0", "0.1"]
    assert unique_names(["a", "a", "a.1", "a"]) == ["a", "a.2", "a.1", "a.3"]  # pandas.read_csv's names


def test_headerless_csvs_read_with_header_across_files(sqlite_workspace: Workspace) -> None:
    _put(sqlite_workspace, {"d4/a.csv": "1,0,0\n2,3,4\n", "d4/b.csv": "7,1,1\n8,2,2\n"})
    store = sqlite_workspace.get_default_datastore()
    frame = Dataset.Tabular.from_delimited_files((store, "d4/*.csv")).to_pandas_dataframe()
    assert list(frame.columns) == ["1", "0", "0.1"]
    assert frame.values.tolist() == [[2, 3, 4], [8, 2, 2]]  # b.csv's first row is its header (header=True)


def test_tables_that_cannot_be_combined_name_the_file_and_column() -> None:
    """The last step of combining files (after type promotion) never lets pyarrow's own error out."""
    one = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    two = pa.Table.from_arrays([pa.array(["x"]), pa.array([3])], names=["a", "a"])
    with pytest.raises(InvalidInputError, match=r"File 'd/one.csv' has column 'a' more than once"):
        _concat([("d/one.csv", one), ("d/two.csv", two)], loose=True)

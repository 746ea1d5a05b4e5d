"""Pipelines with data from outside: datasets, datastore paths and dataset parameters as step inputs,
tabular views of step outputs, register_on_complete, reuse that sees the data, and lineage.

Every test runs real pipelines: a real scheduler process, real step processes, files on the workspace's
datastore. Steps read their inputs the v1 way (`Run.get_context().input_datasets[name]`, argv paths).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.data.consumption import DatasetConsumptionConfig
from runyard.data.data_reference import DataReference
from runyard.data.data_type import DataType
from runyard.data.datapath import DataPath, DataPathComputeBinding
from runyard.data.dataset import Dataset
from runyard.data.datastore import Datastore
from runyard.engine.graph_spec import GRAPH_VERSION, GraphError, parse_graph
from runyard.errors import InvalidInputError
from runyard.pipeline import (
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
)
from runyard.server.auth import create_token
from server_process import running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")

READ_FILES = """
    import pathlib, sys
    root = pathlib.Path(sys.argv[1])
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        print("FILE", f.relative_to(root).as_posix(), f.read_text().strip().replace(chr(10), "|"))
"""


def run_ok(pipeline: Pipeline, **submit: object) -> PipelineRun:
    run = pipeline.submit("data", show_output=False, **submit)  # type: ignore[arg-type]
    status = run.wait_for_completion(show_output=False, timeout_seconds=90)
    assert status == "Finished", [(s.name, s.get_details().get("error")) for s in run.get_steps()]
    return run


def reasons(run: PipelineRun) -> dict[str, str]:
    return {r["step"]: str(r["reason"]) for r in run.get_reuse_report() if not r["reused"]}


def log_of(run: PipelineRun, step: str) -> str:
    return str(run.find_step_run(step)[0].get_job_log())


def upload(ws: Workspace, tmp_path: Path, target: str, files: dict[str, str]) -> None:
    folder = tmp_path / f"upload-{target.replace('/', '_')}"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    ws.get_default_datastore().upload(str(folder), target_path=target, overwrite=True, show_progress=False)


def test_second_step_reads_first_steps_output_as_a_tabular_dataset_registered_on_complete(
    workspace: Workspace, tmp_path: Path
) -> None:
    make_src = SourceDir(tmp_path / "make").gen(
        {
            "make.py": """
                import pathlib, sys
                out = pathlib.Path(sys.argv[1])
                (out / "part-0.csv").write_text("name,score\\nada,3\\nbob,4\\n")
                (out / "part-1.csv").write_text("name,score\\ncy,5\\n")
            """
        }
    )
    use_src = SourceDir(tmp_path / "use").gen(
        {
            "use.py": """
                from runyard import Run
                inputs = Run.get_context().input_datasets
                frame = inputs["table"].to_pandas_dataframe()
                print("ROWS", len(frame), "SUM", int(frame["score"].sum()), "DTYPE", frame["score"].dtype)
                print("COLUMNS", list(inputs["names"].to_pandas_dataframe().columns))
            """,
        }
    )
    table = (
        OutputFileDatasetConfig("table")
        .read_delimited_files(set_column_types={"score": DataType.to_float()})
        .register_on_complete("scores", description="made by make.py", tags={"team": "a"})
    )
    make = PythonScriptStep("make.py", name="make", arguments=[table], source_directory=make_src)
    names = table.keep_columns(["name"]).as_input("names")
    use = PythonScriptStep(
        "use.py", name="use", arguments=[table.as_input("table"), names], source_directory=use_src
    )
    run = run_ok(Pipeline(workspace, [make, use]))
    assert "ROWS 3 SUM 12 DTYPE float64" in log_of(run, "use")
    assert "COLUMNS ['name']" in log_of(run, "use")

    registered = Dataset.get_by_name(workspace, "scores")
    maker = run.find_step_run("make")[0]
    assert registered.version == 1 and registered.description == "made by make.py"
    assert registered.tags == {"team": "a"}
    assert registered._record.run_id == maker.id
    assert sorted(Path(f["path"]).name for f in registered._record.files) == ["part-0.csv", "part-1.csv"]
    assert len(registered.to_pandas_dataframe()) == 3  # a TabularDataset, as read_delimited_files asked
    produced = [u for u in workspace.store.list_dataset_uses(run_id=maker.id) if u.direction == "output"]
    assert [(u.name, u.dataset_id) for u in produced] == [("table", registered.id)]
    assert workspace.store.list_dataset_uses(dataset_id=registered.id)[0].run_id == maker.id
    lineage = [(r["step"], r["direction"], r["name"], r["datasetId"]) for r in run.get_data_lineage()]
    assert lineage == [("make", "output", "table", registered.id)]


def test_a_registered_dataset_input_is_reused_until_a_new_version_is_registered(
    workspace: Workspace, tmp_path: Path
) -> None:
    store = workspace.get_default_datastore()
    upload(workspace, tmp_path, "images/v1", {"a.txt": "one", "b.txt": "two"})
    Dataset.File.from_files((store, "images/v1")).register(workspace, "images")
    src = SourceDir(tmp_path / "src").gen({"read.py": READ_FILES})

    def pipeline() -> Pipeline:
        images = Dataset.get_by_name(workspace, "images")
        step = PythonScriptStep(
            "read.py",
            name="read",
            arguments=[images.as_named_input("images").as_mount()],
            source_directory=src,
        )
        return Pipeline(workspace, [step])

    first = run_ok(pipeline())
    assert "FILE a.txt one" in log_of(first, "read") and "FILE b.txt two" in log_of(first, "read")
    reader = first.find_step_run("read")[0]
    used = workspace.store.list_dataset_uses(run_id=reader.id)
    assert [(u.direction, u.name, u.dataset_id) for u in used] == [
        ("input", "images", Dataset.get_by_name(workspace, "images").id)
    ]
    assert reasons(run_ok(pipeline())) == {}  # nothing changed: reused

    upload(workspace, tmp_path, "images/v2", {"a.txt": "uno"})
    Dataset.File.from_files((store, "images/v2")).register(workspace, "images", create_new_version=True)
    third = run_ok(pipeline())
    assert reasons(third) == {"read": "dataset 'images' version 1 → 2"}
    assert "FILE a.txt uno" in log_of(third, "read")


def test_a_data_reference_reruns_when_one_file_under_its_path_changes(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    upload(ws, tmp_path, "raw", {f"part-{i}.csv": f"x\n{i}\n" for i in range(10)})
    src = SourceDir(tmp_path / "src").gen({"read.py": READ_FILES})

    def pipeline() -> Pipeline:
        raw = DataReference(ws.get_default_datastore(), data_reference_name="raw", path_on_datastore="raw")
        return Pipeline(ws, [PythonScriptStep("read.py", name="read", arguments=[raw], source_directory=src)])

    first = run_ok(pipeline())
    assert "FILE part-7.csv x|7" in log_of(first, "read")
    assert reasons(run_ok(pipeline())) == {}
    target = ws.get_default_datastore().local_path("raw/part-7.csv")
    target.write_text("x\n70\n")
    third = run_ok(pipeline())
    assert reasons(third) == {"read": "file raw/part-7.csv under datastore path 'raw' changed"}
    assert "FILE part-7.csv x|70" in log_of(third, "read")
    used = ws.store.list_dataset_uses(run_id=third.find_step_run("read")[0].id)
    assert [(u.name, u.dataset_id, u.detail.get("path")) for u in used] == [("raw", None, "raw")]


def test_a_registered_version_whose_file_changed_fails_the_step_loudly(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    upload(ws, tmp_path, "frozen", {"a.txt": "one"})
    data = Dataset.File.from_files((ws.get_default_datastore(), "frozen")).register(ws, "frozen")
    ws.get_default_datastore().local_path("frozen/a.txt").write_text("tampered")
    src = SourceDir(tmp_path / "src").gen({"read.py": READ_FILES})
    step = PythonScriptStep(
        "read.py", name="read", arguments=[data.as_named_input("frozen").as_download()], source_directory=src
    )
    run = Pipeline(ws, [step]).submit("data", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60, raise_on_error=False) == "Failed"
    error = run.find_step_run("read")[0].get_details()["error"]
    message = str(error)
    assert "dataset 'frozen' version 1 no longer resolves" in message
    assert "a.txt" in message and "changed since it was registered" in message


def test_a_dataset_pipeline_parameter_is_overridden_at_submit(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    store = ws.get_default_datastore()
    upload(ws, tmp_path, "small", {"rows.csv": "v\n1\n2\n"})
    upload(ws, tmp_path, "big", {"rows.csv": "v\n1\n2\n3\n4\n"})
    small = Dataset.Tabular.from_delimited_files((store, "small/rows.csv"))
    big = Dataset.Tabular.from_delimited_files((store, "big/rows.csv")).register(ws, "big")
    src = SourceDir(tmp_path / "src").gen(
        {
            "count.py": """
                import sys
                from runyard import Run
                frame = Run.get_context().input_datasets["rows"].to_pandas_dataframe()
                print("COUNT", len(frame), "ARG", sys.argv[1])
            """
        }
    )
    param = PipelineParameter("rows_param", default_value=small)
    rows = DatasetConsumptionConfig("rows", param)
    step = PythonScriptStep("count.py", name="count", arguments=[rows], source_directory=src)
    default_run = run_ok(Pipeline(ws, [step]))
    assert "COUNT 2 ARG rows" in log_of(default_run, "count")  # direct, unregistered: the input's name
    override = run_ok(Pipeline(ws, [step]), pipeline_parameters={"rows_param": big})
    assert f"COUNT 4 ARG {big.id}" in log_of(override, "count")  # direct, registered: its id (v1)
    assert reasons(override) == {
        "count": "input 'rows' is now dataset 'big' version 1 (was an unregistered dataset)"
    }
    with pytest.raises(InvalidInputError, match="must be a dataset"):
        Pipeline(ws, [step]).submit("data", show_output=False, pipeline_parameters={"rows_param": "x"})


def test_mount_reads_in_place_and_download_gives_a_private_copy(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    upload(ws, tmp_path, "shared", {"data.txt": "original"})
    files = Dataset.File.from_files((ws.get_default_datastore(), "shared"))
    src = SourceDir(tmp_path / "src").gen(
        {
            "touch.py": """
                import os, pathlib, sys
                from runyard import Run
                mounted, copied = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
                print("MOUNT", (mounted / "data.txt").read_text(), (mounted / "data.txt").is_symlink())
                print("INPUTS", sorted(Run.get_context().input_datasets.items()))
                (copied / "data.txt").write_text("changed by the step")
                print("COPY", (copied / "data.txt").read_text(), (copied / "data.txt").is_symlink())
            """
        }
    )
    step = PythonScriptStep(
        "touch.py",
        name="touch",
        arguments=[files.as_named_input("mounted").as_mount(), files.as_named_input("copied").as_download()],
        source_directory=src,
    )
    run = run_ok(Pipeline(ws, [step]))
    log = log_of(run, "touch")
    assert "MOUNT original True" in log
    assert "COPY changed by the step False" in log
    assert ws.get_default_datastore().local_path("shared/data.txt").read_text() == "original"
    assert "('copied', '/" in log and "('mounted', '/" in log  # mounted/downloaded inputs are paths


def test_the_graph_carries_dataset_inputs_and_the_scheduler_checks_them(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    upload(ws, tmp_path, "raw", {"a.txt": "1"})
    src = SourceDir(tmp_path / "src").gen({"read.py": READ_FILES})
    files = Dataset.File.from_files((ws.get_default_datastore(), "raw"))
    step = PythonScriptStep(
        "read.py",
        name="read",
        arguments=[ws.get_default_datastore().path("raw").as_download(), files.as_named_input("files")],
        source_directory=src,
    )
    graph = Pipeline(ws, [step]).graph
    assert graph["version"] == GRAPH_VERSION == 4
    entries = graph["steps"][0]["datasets"]
    assert [(e["name"], e["mode"], sorted(e["source"])) for e in entries] == [
        ("workspaceblobstore", "download", ["datastore", "path"]),
        ("files", "direct", ["dataset"]),
    ]
    assert graph["steps"][0]["arguments"] == [{"input": "workspaceblobstore"}, {"input": "files"}]
    assert parse_graph(graph).to_json() == graph

    def broken(change: Any) -> str:
        bad = copy.deepcopy(graph)
        change(bad["steps"][0])
        with pytest.raises(GraphError) as caught:
            parse_graph(bad)
        return str(caught.value)

    assert "leaves its datastore" in broken(lambda s: s["datasets"][0]["source"].update(path="../../etc"))
    assert "valid dataset definition" in broken(
        lambda s: s["datasets"][1]["source"]["dataset"]["definition"].update(kind="video")
    )
    assert "exactly one of" in broken(lambda s: s["datasets"][0]["source"].update(param="p"))
    assert "not one of its inputs" in broken(lambda s: s["arguments"].append({"input": "nope"}))
    old = copy.deepcopy(graph)
    old["version"] = 1
    with pytest.raises(GraphError, match="version 1 graph has no dataset inputs"):
        parse_graph(old)
    for s in old["steps"]:
        s.pop("datasets")
        s["arguments"] = []
    assert parse_graph(old).version == 1  # graphs written before dataset inputs are still read


def test_a_datapath_pipeline_parameter_is_read_and_overridden_at_submit(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    store = ws.get_default_datastore()
    upload(ws, tmp_path, "a", {"x.txt": "from a"})
    upload(ws, tmp_path, "b", {"x.txt": "from b"})
    src = SourceDir(tmp_path / "src").gen({"read.py": READ_FILES})
    param = PipelineParameter("dp", default_value=DataPath(store, "a"))
    bound = (param, DataPathComputeBinding(mode="download"))
    step = PythonScriptStep("read.py", name="read", arguments=[bound], inputs=[bound], source_directory=src)
    first = run_ok(Pipeline(ws, [step]))
    assert "FILE x.txt from a" in log_of(first, "read")
    second = run_ok(Pipeline(ws, [step]), pipeline_parameters={"dp": DataPath(store, "b")})
    assert "FILE x.txt from b" in log_of(second, "read")
    assert reasons(second) == {"read": "input 'dp' is now datastore path 'b' (was datastore path 'a')"}
    with pytest.raises(InvalidInputError, match="must be a DataPath"):
        Pipeline(ws, [step]).submit("data", show_output=False, pipeline_parameters={"dp": "b"})


def test_an_output_on_a_file_datastore_outside_the_workspace_lands_there_too(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    shared = tmp_path / "shared-drive"
    shared.mkdir()
    store = Datastore.register_fsspec(ws, "shared", shared.as_uri())
    src = SourceDir(tmp_path / "src").gen(
        {
            "write.py": """
                import pathlib, sys
                (pathlib.Path(sys.argv[1]) / "result.txt").write_text("42")
            """
        }
    )
    out = PipelineData("result", datastore=store)
    step = PythonScriptStep("write.py", name="write", arguments=[out], outputs=[out], source_directory=src)
    run = run_ok(Pipeline(ws, [step]))
    writer = run.find_step_run("write")[0]
    assert (shared / "azureml" / writer.id / "result" / "result.txt").read_text() == "42"
    assert Path(writer.get_output_data("result").local_path, "result.txt").read_text() == "42"  # the mirror


def test_an_unregistered_dataset_input_reruns_when_a_file_it_globs_changes(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    upload(ws, tmp_path, "loose", {"a.txt": "1", "b.txt": "2", "skip.md": "no"})
    src = SourceDir(tmp_path / "src").gen({"read.py": READ_FILES})

    def pipeline() -> Pipeline:
        loose = Dataset.File.from_files((ws.get_default_datastore(), "loose/*.txt"))
        step = PythonScriptStep("read.py", name="read", arguments=[loose.as_mount()], source_directory=src)
        return Pipeline(ws, [step])

    first = run_ok(pipeline())
    assert "FILE a.txt 1" in log_of(first, "read") and "skip.md" not in log_of(first, "read")
    ws.get_default_datastore().local_path("loose/skip.md").write_text("not matched: no rerun")
    assert reasons(run_ok(pipeline())) == {}
    ws.get_default_datastore().local_path("loose/c.txt").write_text("3")
    third = run_ok(pipeline())
    assert reasons(third) == {
        "read": "file loose/c.txt on datastore 'workspaceblobstore' of input 'input' (an unregistered dataset) added"
    }
    assert "FILE c.txt 3" in log_of(third, "read")


@pytest.fixture
def server_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace served by a real `runyard server --auth` on 127.0.0.1, opened over REST."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "3")
    local = Workspace.create(tmp_path / "server-ws" / ".runyard")
    token, _ = create_token(local.store, "write", name="pipeline-datasets")
    with running_server(local.path, tmp_path / "server.log", auth=True) as server:
        yield Workspace.get(server.url, token=token)


def test_a_server_workspace_pipeline_reads_a_registered_dataset_and_registers_its_output(
    server_workspace: Workspace, tmp_path: Path
) -> None:
    ws = server_workspace
    upload(ws, tmp_path, "remote-in", {"n.txt": "5"})
    data = Dataset.File.from_files((ws.get_default_datastore(), "remote-in")).register(ws, "remote_in")
    src = SourceDir(tmp_path / "src").gen(
        {
            "double.py": """
                import pathlib, sys
                n = int((pathlib.Path(sys.argv[1]) / "n.txt").read_text())
                (pathlib.Path(sys.argv[2]) / "double.txt").write_text(str(2 * n))
            """
        }
    )
    out = OutputFileDatasetConfig("doubled").register_on_complete("remote_out")
    step = PythonScriptStep(
        "double.py",
        name="double",
        arguments=[data.as_named_input("n").as_download(), out],
        source_directory=src,
    )
    run = run_ok(Pipeline(ws, [step]))
    step_run = run.find_step_run("double")[0]
    produced = Dataset.get_by_name(ws, "remote_out")
    assert produced._record.run_id == step_run.id
    assert [Path(p).read_text() for p in produced.download(str(tmp_path / "dl"))] == ["10"]
    uses = {(u.direction, u.name): u.dataset_id for u in ws.store.list_dataset_uses(run_id=step_run.id)}
    assert uses == {("input", "n"): data.id, ("output", "doubled"): produced.id}

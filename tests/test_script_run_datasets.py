"""Datasets and datastore paths in ScriptRunConfig arguments, Run.input_datasets, lineage and
register_on_complete: real submitted runs (supervisor and script processes), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.data import Dataset, Datastore
from runyard.data.hashing import hash_datastore_path
from runyard.errors import DataAccessError, InvalidInputError
from runyard.pipeline import OutputFileDatasetConfig
from s3_fixture import S3_KEY, S3_SECRET

CSV = "age,bmi,diabetic\n50,33.6,1\n31,26.6,0\n32,23.3,1\n"

# DP-100's train script: the dataset arrives by name, the id through the argument.
READ_TABULAR = """
import argparse
from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--input-data", type=str, dest="dataset_id")
args = parser.parse_args()
run = Run.get_context()
df = run.input_datasets["raw_data"].to_pandas_dataframe()
run.log("rows", len(df))
print("DATASET_ID", args.dataset_id)
print("COLUMNS", list(df.columns))
"""

# Lists what it was given and, for a download, changes its private copy.
LIST_FILES = """
import os, sys
from azureml.core import Run

folder = sys.argv[1]
run = Run.get_context()
name = sys.argv[2]
assert run.input_datasets[name] == folder, (run.input_datasets, folder)
assert os.environ["AZUREML_DATAREFERENCE_" + name] == folder
found = sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)
print("FILES", found)
for rel in found:
    with open(os.path.join(folder, rel)) as fh:
        print("READ", rel, fh.read().strip())
if len(sys.argv) > 3 and sys.argv[3] == "change":
    with open(os.path.join(folder, found[0]), "w") as fh:
        fh.write("changed by the script")
"""

WRITE_CSV = """
import os, sys
out = sys.argv[1]
if sys.argv[2] == "write":
    with open(os.path.join(out, "prepared.csv"), "w") as fh:
        fh.write("a,b\\n1,x\\n2,y\\n3,z\\n")
"""


def put_files(ws: Workspace, files: dict[str, str]) -> None:
    """Files on the default datastore, written where the datastore keeps them."""
    store = ws.get_default_datastore()
    for rel, text in files.items():
        target = store.local_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def submit(ws: Workspace, source_dir: SourceDir, script: str, arguments: list[object]) -> Run:
    source_dir.gen({"job.py": script})
    return Experiment(ws, "script-datasets").submit(
        ScriptRunConfig(source_dir, "job.py", arguments=arguments)
    )


def finished(run: Run) -> dict[str, object]:
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", (details.get("error"), run.read_log().decode()[-3000:])
    return details


def test_dp100_tabular_dataset_by_name_in_the_job(workspace: Workspace, source_dir: SourceDir) -> None:
    put_files(workspace, {"diabetes/part1.csv": CSV})
    store = workspace.get_default_datastore()
    tab = Dataset.Tabular.from_delimited_files((store, "diabetes/*.csv")).register(workspace, "diabetes")
    run = submit(workspace, source_dir, READ_TABULAR, ["--input-data", tab.as_named_input("raw_data")])
    details = finished(run)
    log = run.read_log().decode()
    assert f"DATASET_ID {tab.id}" in log  # direct mode: the argument is the dataset's id
    assert "COLUMNS ['age', 'bmi', 'diabetic']" in log
    assert run.get_metrics()["rows"] == 3
    assert details["runDefinition"]["arguments"] == ["--input-data", tab.id]  # type: ignore[index]

    [entry] = details["inputDatasets"]  # type: ignore[misc]
    assert entry["consumptionDetails"] == {"type": "RunInput", "inputName": "raw_data", "mechanism": "Direct"}
    assert (entry["dataset"].name, entry["dataset"].version, entry["dataset"].id) == ("diabetes", 1, tab.id)
    [use] = workspace.store.list_dataset_uses(run_id=run.id)
    assert (use.direction, use.name, use.dataset_id, use.content_hash) == (
        "input",
        "raw_data",
        tab.id,
        tab.content_hash,
    )
    assert Run.get(workspace, run.id).input_datasets == {}  # outside the job there is nothing to hand out


@pytest.mark.parametrize("mode", ["mount", "download"])
def test_file_dataset_mounted_or_downloaded(workspace: Workspace, source_dir: SourceDir, mode: str) -> None:
    put_files(workspace, {"images/a.txt": "apple", "images/sub/b.txt": "banana"})
    store = workspace.get_default_datastore()
    files = Dataset.File.from_files((store, "images")).register(workspace, "images")
    consumed = files.as_named_input("pics")
    consumed = consumed.as_mount() if mode == "mount" else consumed.as_download()
    run = submit(
        workspace, source_dir, LIST_FILES, [consumed, "pics", "change" if mode == "download" else "-"]
    )
    details = finished(run)
    log = run.read_log().decode()
    assert "FILES ['a.txt', 'sub/b.txt']" in log and "READ sub/b.txt banana" in log
    assert store.local_path("images/a.txt").read_text() == "apple"  # a download is a private copy
    [entry] = details["inputDatasets"]  # type: ignore[misc]
    assert entry["consumptionDetails"]["mechanism"] == mode.capitalize()
    # The copy lived in the run's working folder, which goes when the run ends.
    assert not (workspace.work_dir / run.id).exists()


def test_file_dataset_shortcut_and_bare_dataset(workspace: Workspace, source_dir: SourceDir) -> None:
    put_files(workspace, {"docs/readme.txt": "hello"})
    store = workspace.get_default_datastore()
    unregistered = Dataset.File.from_files((store, "docs/*.txt"))
    consumed = unregistered.as_download()
    run = submit(workspace, source_dir, LIST_FILES, [consumed, consumed.name])
    finished(run)
    assert "READ readme.txt hello" in run.read_log().decode()
    [use] = workspace.store.list_dataset_uses(run_id=run.id)
    assert use.dataset_id is None and use.detail["definition"]["sources"] == [
        {"datastore": "workspaceblobstore", "path": "docs/*.txt"}
    ]


def test_data_reference_argument(workspace: Workspace, source_dir: SourceDir) -> None:
    put_files(workspace, {"raw/one.csv": "x\n1\n", "raw/two.csv": "x\n2\n"})
    store = workspace.get_default_datastore()
    reference = store.path("raw", data_reference_name="raw_data").as_download()
    run = submit(workspace, source_dir, LIST_FILES, [reference, "raw_data"])
    details = finished(run)
    assert "FILES ['one.csv', 'two.csv']" in run.read_log().decode()
    [entry] = details["inputDatasets"]  # type: ignore[misc]
    assert entry["consumptionDetails"] == {
        "type": "RunInput",
        "inputName": "raw_data",
        "mechanism": "Download",
    }
    [use] = workspace.store.list_dataset_uses(run_id=run.id)
    assert use.dataset_id is None
    assert (use.detail["datastore"], use.detail["path"]) == ("workspaceblobstore", "raw")
    assert use.content_hash == hash_datastore_path(workspace, "workspaceblobstore", "raw")[0]


def test_register_on_complete_versions_and_lineage(workspace: Workspace, source_dir: SourceDir) -> None:
    runs = []
    # The second script ends its run itself (as DP-100's do): the dataset is still there when
    # wait_for_completion returns.
    for script in (WRITE_CSV, WRITE_CSV + "from azureml.core import Run\nRun.get_context().complete()\n"):
        out = OutputFileDatasetConfig(name="prepared").read_delimited_files()
        out = out.register_on_complete("prepared-data", description="cleaned rows", tags={"stage": "prep"})
        run = submit(workspace, source_dir, script, [out, "write"])
        details = finished(run)
        runs.append(run)
    latest = Dataset.get_by_name(workspace, "prepared-data")
    assert latest.version == 2 and latest.description == "cleaned rows" and latest.tags == {"stage": "prep"}
    assert type(latest).__name__ == "TabularDataset"
    assert latest.to_pandas_dataframe()["b"].tolist() == ["x", "y", "z"]
    assert workspace.store.get_dataset_by_id(str(latest.id)).run_id == runs[1].id
    first = Dataset.get_by_name(workspace, "prepared-data", version=1)
    assert workspace.store.get_dataset_by_id(str(first.id)).run_id == runs[0].id

    [use] = workspace.store.list_dataset_uses(run_id=runs[1].id)
    assert (use.direction, use.name, use.dataset_id) == ("output", "prepared", latest.id)
    assert [u.run_id for u in workspace.store.list_dataset_uses(dataset_name="prepared-data")] == [
        r.id for r in runs
    ]
    [output] = details["outputDatasets"]  # type: ignore[misc]
    assert output["registered"] == {"id": latest.id, "name": "prepared-data", "version": 2}
    assert output["dataset"].id == latest.id


def test_a_failed_registration_fails_the_run_and_keeps_it(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    out = OutputFileDatasetConfig(name="empty").register_on_complete("never-written")
    run = submit(sqlite_workspace, source_dir, WRITE_CSV, [out, "skip"])
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    message = details["error"]["message"]  # type: ignore[index]
    assert "output 'empty'" in message and "'never-written'" in message and "matched no files" in message
    assert sqlite_workspace.store.list_datasets(name="never-written") == []


def test_an_output_without_registration_is_recorded_with_its_hash(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    out = OutputFileDatasetConfig(name="model_out")
    run = submit(sqlite_workspace, source_dir, WRITE_CSV, [out, "write"])
    details = finished(run)
    [use] = sqlite_workspace.store.list_dataset_uses(run_id=run.id)
    [output] = details["outputDatasets"]  # type: ignore[misc]
    assert (use.direction, use.dataset_id) == ("output", None)
    assert use.content_hash == output["contentHash"]
    assert (
        use.content_hash
        == hash_datastore_path(sqlite_workspace, "workspaceblobstore", output["pathOnDatastore"])[0]
    )


def test_changed_registered_file_refuses_the_submit(workspace: Workspace, source_dir: SourceDir) -> None:
    put_files(workspace, {"sales/jan.csv": CSV})
    store = workspace.get_default_datastore()
    tab = Dataset.Tabular.from_delimited_files((store, "sales/jan.csv")).register(workspace, "sales")
    store.local_path("sales/jan.csv").write_text(CSV + "60,40.1,1\n")
    before = {r.run_id for r in workspace.store.list_runs()}
    with pytest.raises(DataAccessError, match=r"sales/jan\.csv.*changed since it was registered"):
        submit(workspace, source_dir, READ_TABULAR, ["--input-data", tab.as_named_input("raw_data")])
    assert {r.run_id for r in workspace.store.list_runs()} == before  # no run, and no working folder
    assert not workspace.work_dir.exists() or not any(workspace.work_dir.iterdir())


def test_refusals_leave_nothing_behind(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    ws = sqlite_workspace
    put_files(ws, {"one/a.txt": "a"})
    store = ws.get_default_datastore()
    files = Dataset.File.from_files((store, "one"))
    out = OutputFileDatasetConfig(name="same")
    with pytest.raises(InvalidInputError, match="name of an input and of an output"):
        submit(ws, source_dir, LIST_FILES, [files.as_named_input("same").as_mount(), out])
    with pytest.raises(InvalidInputError, match="data_reference_name="):
        submit(
            ws, source_dir, LIST_FILES, [store.path("one").as_mount(), store.path("one/a.txt").as_download()]
        )
    with pytest.raises(InvalidInputError, match="holds no files"):
        submit(ws, source_dir, LIST_FILES, [store.path("nothing-here").as_mount()])
    with pytest.raises(InvalidInputError, match="path_on_compute"):
        submit(ws, source_dir, LIST_FILES, [files.as_named_input("x").as_download(path_on_compute="/etc/x")])
    with pytest.raises(InvalidInputError, match="kept with the run"):
        submit(
            ws, source_dir, LIST_FILES, [files.as_named_input("x").as_download(path_on_compute="outputs/x")]
        )
    assert list(ws.store.list_runs()) == []
    assert not store.local_path("azureml").exists() or not any(store.local_path("azureml").iterdir())


def test_inputs_file_names_what_the_job_gets(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    """The job's inputs file (RUNYARD_INPUT_DATASETS), the same format pipeline steps get."""
    put_files(sqlite_workspace, {"t/a.csv": CSV})
    store = sqlite_workspace.get_default_datastore()
    tab = Dataset.Tabular.from_delimited_files((store, "t/a.csv"))
    script = """
import json, os
print("INPUTS", json.dumps(json.load(open(os.environ["RUNYARD_INPUT_DATASETS"]))))
"""
    run = submit(
        sqlite_workspace, source_dir, script, [tab.as_named_input("table"), store.path("t").as_mount()]
    )
    finished(run)
    line = next(x for x in run.read_log().decode().splitlines() if x.startswith("INPUTS "))
    inputs = json.loads(line[len("INPUTS ") :])
    assert inputs["table"]["mode"] == "direct" and inputs["table"]["path"] is None
    assert inputs["table"]["dataset"]["definition"]["kind"] == "tabular"
    mounted = inputs["workspaceblobstore"]
    assert (mounted["mode"], mounted["datastore"], mounted["path_on_datastore"]) == (
        "mount",
        "workspaceblobstore",
        "t",
    )
    assert mounted["dataset"] is None and os.path.isabs(mounted["path"])
    assert Path(mounted["path"]).name == "workspaceblobstore"


def test_a_dataset_derived_from_a_version_reads_its_files(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    put_files(sqlite_workspace, {"diabetes/part1.csv": CSV})
    store = sqlite_workspace.get_default_datastore()
    tab = Dataset.Tabular.from_delimited_files((store, "diabetes/*.csv")).register(
        sqlite_workspace, "diabetes"
    )
    run = submit(
        sqlite_workspace, source_dir, READ_TABULAR, ["--input-data", tab.take(2).as_named_input("raw_data")]
    )
    details = finished(run)
    assert run.get_metrics()["rows"] == 2 and "DATASET_ID raw_data" in run.read_log().decode()
    [use] = sqlite_workspace.store.list_dataset_uses(run_id=run.id)
    assert use.dataset_id == tab.id and use.detail["definition"]["transforms"] == [{"op": "take", "count": 2}]
    [entry] = details["inputDatasets"]  # type: ignore[misc]
    assert entry["dataset"].id is None and entry["dataset"].content_hash == tab.content_hash


def test_s3_inputs_and_a_registered_output_on_s3(
    sqlite_workspace: Workspace, source_dir: SourceDir, s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    ws = sqlite_workspace
    s3 = Datastore.register_fsspec(
        ws,
        "lake",
        f"s3://{bucket}/data",
        key=S3_KEY,
        secret=S3_SECRET,
        client_kwargs={"endpoint_url": endpoint},
    )
    (tmp_path / "up" / "raw").mkdir(parents=True)
    (tmp_path / "up" / "raw" / "r.csv").write_text("x\n7\n")
    s3.upload(str(tmp_path / "up"), show_progress=False)
    files = Dataset.File.from_files((s3, "raw")).register(ws, "lake-raw")
    out = OutputFileDatasetConfig(name="made", destination=(s3, "made/{run-id}")).read_delimited_files()
    out = out.register_on_complete("lake-made")
    script = LIST_FILES.replace("if len(sys.argv) > 3", "if False") + WRITE_CSV.replace(
        "sys.argv[1]", "sys.argv[3]"
    ).replace("sys.argv[2]", "sys.argv[4]")
    run = submit(
        ws, source_dir, script, [files.as_named_input("lake_in").as_mount(), "lake_in", out, "write"]
    )
    details = finished(run)
    assert "READ r.csv x\n7" in run.read_log().decode()
    made = Dataset.get_by_name(ws, "lake-made")
    assert made.to_pandas_dataframe()["a"].tolist() == [1, 2, 3]
    assert [f["datastore"] for f in ws.store.get_dataset_by_id(str(made.id)).files] == ["lake"]
    assert s3.backend().list_files(f"made/{run.id}")[0].path == f"made/{run.id}/prepared.csv"
    [entry] = details["inputDatasets"]  # type: ignore[misc]
    assert entry["consumptionDetails"]["mechanism"] == "Mount" and entry["dataset"].id == files.id


def test_a_data_reference_to_one_file_is_that_file(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    put_files(sqlite_workspace, {"raw/config.json": '{"lr": 0.1}'})
    reference = sqlite_workspace.get_default_datastore().path("raw/config.json", data_reference_name="cfg")
    script = """
import json, sys
from azureml.core import Run
assert Run.get_context().input_datasets["cfg"] == sys.argv[1]
print("LR", json.load(open(sys.argv[1]))["lr"])
"""
    run = submit(sqlite_workspace, source_dir, script, [reference.as_mount()])
    finished(run)
    assert "LR 0.1" in run.read_log().decode()


def test_against_a_server_workspace(
    tmp_path: Path, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server workspace: the input is downloaded through the server at submit, the output (written to
    the local mirror) is uploaded to the server's datastore when the run ends, then registered there."""
    from runyard.server.auth import create_token
    from runyard.store import SqlStore
    from server_process import running_server

    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    served = Workspace.create(tmp_path / "server" / ".runyard")
    assert isinstance(served.store, SqlStore)
    token, _ = create_token(served.store, "write", name="script-datasets")
    with running_server(served.path, tmp_path / "server.log", auth=True) as server:
        ws = Workspace.get(server.url, token=token)
        (tmp_path / "up").mkdir()
        (tmp_path / "up" / "d.csv").write_text(CSV)
        store = ws.get_default_datastore()
        store.upload(str(tmp_path / "up"), target_path="diabetes", show_progress=False)
        files = Dataset.File.from_files((store, "diabetes")).register(ws, "diabetes-files")
        out = OutputFileDatasetConfig(name="prepared").read_delimited_files().register_on_complete("prepared")
        script = LIST_FILES.replace("if len(sys.argv) > 3", "if False") + WRITE_CSV.replace(
            "sys.argv[1]", "sys.argv[3]"
        ).replace("sys.argv[2]", "sys.argv[4]")
        run = submit(ws, source_dir, script, [files.as_named_input("raw").as_download(), "raw", out, "write"])
        details = finished(run)
        assert "READ d.csv age,bmi,diabetic" in run.read_log().decode()
        made = Dataset.get_by_name(ws, "prepared")
        assert made.to_pandas_dataframe()["a"].tolist() == [1, 2, 3]
        assert served.store.get_dataset_by_id(str(made.id)).run_id == run.id
        assert [u.direction for u in ws.store.list_dataset_uses(run_id=run.id)] == ["input", "output"]
        [entry] = details["inputDatasets"]  # type: ignore[misc]
        assert entry["dataset"].id == files.id


def test_path_on_compute_puts_the_input_in_the_working_folder(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    put_files(sqlite_workspace, {"imgs/a.txt": "apple"})
    files = Dataset.File.from_files((sqlite_workspace.get_default_datastore(), "imgs"))
    script = """
import os, sys
print("RELATIVE", os.path.relpath(sys.argv[1]), open("data/imgs/a.txt").read())
"""
    run = submit(sqlite_workspace, source_dir, script, [files.as_named_input("x").as_mount("data/imgs")])
    finished(run)
    assert "RELATIVE data/imgs apple" in run.read_log().decode()


def test_register_on_complete_keeps_the_views_columns(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    out = (
        OutputFileDatasetConfig(name="cols")
        .read_delimited_files()
        .keep_columns("b")
        .register_on_complete("only-b")
    )
    run = submit(sqlite_workspace, source_dir, WRITE_CSV, [out, "write"])
    finished(run)
    assert list(Dataset.get_by_name(sqlite_workspace, "only-b").to_pandas_dataframe().columns) == ["b"]

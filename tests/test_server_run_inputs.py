"""A job on a server workspace reads its direct-mode dataset input through the server with its run token,
and nothing else on the datastore (server/run_inputs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.data import Dataset
from runyard.server.auth import create_token
from runyard.store import SqlStore
from server_process import running_server

READ_AND_PROBE = """
from azureml.core import Run, Dataset

run = Run.get_context()
df = run.input_datasets["raw_data"].to_pandas_dataframe()
run.log("rows", len(df))
try:
    Dataset.get_by_name(run.experiment.workspace, "secret-table").to_pandas_dataframe()
    print("OTHER DATASET READ")
except Exception as exc:
    print("OTHER DATASET REFUSED", type(exc).__name__)
try:
    print("LISTED", sorted(run.experiment.workspace.artifacts.list("datastores/workspaceblobstore/mine")))
except Exception as exc:
    print("LIST REFUSED", type(exc).__name__)
# A job cannot widen what it may read by recording an input for itself.
from runyard.store.records import DatasetUse
try:
    run.experiment.workspace.store.record_dataset_uses(
        [DatasetUse(run.id, "input", "everything", "0" * 64, None, {"datastore": "workspaceblobstore", "path": ""})]
    )
    print("INPUT RECORDED")
except Exception as exc:
    print("INPUT REFUSED", type(exc).__name__)
"""


def test_a_run_token_reads_its_inputs_and_no_other_dataset(
    tmp_path: Path, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    served = Workspace.create(tmp_path / "server" / ".runyard")
    assert isinstance(served.store, SqlStore)
    token, _ = create_token(served.store, "write", name="inputs")
    with running_server(served.path, tmp_path / "server.log", auth=True) as server:
        ws = Workspace.get(server.url, token=token)
        (tmp_path / "mine" / "private").mkdir(parents=True)
        (tmp_path / "mine" / "private" / "x.txt").write_text("not an input")
        for folder, text in (("mine", "a,b\n1,2\n3,4\n5,6\n"), ("theirs", "s\nhidden\n")):
            (tmp_path / folder).mkdir(exist_ok=True)
            (tmp_path / folder / "t.csv").write_text(text)
            ws.get_default_datastore().upload(str(tmp_path / folder), target_path=folder, show_progress=False)
        store = ws.get_default_datastore()
        mine = Dataset.Tabular.from_delimited_files((store, "mine/*.csv")).register(ws, "my-table")
        Dataset.Tabular.from_delimited_files((store, "theirs/*.csv")).register(ws, "secret-table")
        source_dir.gen({"job.py": READ_AND_PROBE})
        unregistered = Dataset.Tabular.from_delimited_files((store, "mine/*.csv"))
        for given, listing in ((mine, "LIST REFUSED"), (unregistered, "LISTED ['t.csv']")):
            run = Experiment(ws, "inputs").submit(
                ScriptRunConfig(source_dir, "job.py", arguments=[given.as_named_input("raw_data")])
            )
            run.wait_for_completion(show_output=False)
            log = run.read_log().decode()
            assert run.get_status() == "Completed", log
            assert run.get_metrics()["rows"] == 3
            assert "OTHER DATASET REFUSED" in log, log
            assert "INPUT REFUSED" in log and "INPUT RECORDED" not in log, log
            # a registered version grants its recorded files only; a glob grants what it matches, and a
            # listing of its folder shows only that (not private/x.txt below it)
            assert listing in log, log

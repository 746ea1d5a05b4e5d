"""data/output_datasets.py: the one reading of an output folder that script runs and pipeline steps share
(its tabular view, its upload, its register_on_complete), and set_column_types that keep their DataType
arguments (datetime formats, decimal marks) from read_delimited_files to the registered dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import SourceDir
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.data import Dataset
from runyard.data.data_type import DataType
from runyard.data.output_datasets import register_output, tabular_view, upload_output
from runyard.errors import ConflictError
from runyard.pipeline import OutputFileDatasetConfig

WRITE_TYPED = """
import os, sys
with open(os.path.join(sys.argv[1], "typed.csv"), "w") as fh:
    fh.write("d;x\\n03/02/2024;1,5\\n25/12/2023;2,25\\n")
"""


def test_set_column_types_keep_datetime_formats_and_decimal_marks(
    workspace: Workspace, source_dir: SourceDir
) -> None:
    out = OutputFileDatasetConfig(name="typed").read_delimited_files(
        separator=";",
        set_column_types={"d": DataType.to_datetime(["%d/%m/%Y"]), "x": DataType.to_float(decimal_mark=",")},
    )
    assert out.read["set_column_types"] == {
        "d": DataType.to_datetime(["%d/%m/%Y"]).to_spec(),
        "x": DataType.to_float(decimal_mark=",").to_spec(),
    }
    out = out.register_on_complete("typed-out")
    source_dir.gen({"job.py": WRITE_TYPED})
    run = Experiment(workspace, "typed").submit(ScriptRunConfig(source_dir, "job.py", arguments=[out]))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", (details.get("error"), run.read_log().decode()[-2000:])

    df = Dataset.get_by_name(workspace, "typed-out").to_pandas_dataframe()
    assert list(df["d"]) == [pd.Timestamp(2024, 2, 3), pd.Timestamp(2023, 12, 25)]
    assert list(df["x"]) == [1.5, 2.25]


def test_register_output_registers_the_shaped_tabular_view(workspace: Workspace) -> None:
    store = workspace.get_default_datastore()
    folder = store.local_path("made/run-1")
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text("k,v,w\n1,x,2\n2,y,3\n")
    (folder / "notes.txt").write_text("not a table")
    read = {
        "read": "delimited_files",
        "path_glob": "/*.csv",
        "transforms": [{"op": "drop_columns", "columns": ["w"]}],
    }

    record = register_output(
        workspace, "made", "what run-1 made", {"k": 1}, read, store.name, "made/run-1/", "run-1"
    )
    assert (record.name, record.version, record.run_id, record.kind) == ("made", 1, "run-1", "tabular")
    assert record.tags == {"k": "1"}  # tags are text, as v1 keeps them
    assert [f["path"].rsplit("/", 1)[-1] for f in record.files] == ["a.csv"]
    df = Dataset.get_by_name(workspace, "made").to_pandas_dataframe()
    assert list(df.columns) == ["k", "v"]
    # the same view over the local folder, as a consumer step reads it
    assert tabular_view(str(folder), read).to_pandas_dataframe().equals(df)

    again = register_output(workspace, "made", None, None, None, store.name.upper(), "made/run-1", "run-2")
    assert (again.version, again.kind, len(again.files)) == (2, "file", 2)


def test_upload_output_refuses_files_already_there_unless_overwrite(
    workspace: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "sub" / "a.txt").write_text("one")
    first = upload_output(workspace, "workspaceblobstore", tmp_path / "out", "/up/", overwrite=False)
    assert first.files == 1 and first.url.endswith("/up")
    blob = workspace.get_default_datastore()
    assert blob.local_path("up/sub/a.txt").read_text() == "one"

    (tmp_path / "out" / "sub" / "a.txt").write_text("two")
    with pytest.raises(ConflictError, match=r"Output 'made' goes to 'up'.*'sub/a\.txt'.*overwrite=True"):
        upload_output(
            workspace, "workspaceblobstore", tmp_path / "out", "up", overwrite=False, output_name="made"
        )
    assert blob.local_path("up/sub/a.txt").read_text() == "one"
    assert upload_output(workspace, "workspaceblobstore", tmp_path / "out", "up", overwrite=True).files == 1
    assert blob.local_path("up/sub/a.txt").read_text() == "two"

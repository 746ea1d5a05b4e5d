"""A pipeline on an S3-backed datastore (moto in server mode on 127.0.0.1, tests/s3_fixture.py): a
DataReference on S3 as a step input (hashed by ETag for reuse), and an output whose destination is on S3:
written to local scratch, uploaded file by file when the step succeeds, kept in the local datastore
mirror that the next step reads, and registered on complete as a dataset on the S3 store."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.data.data_reference import DataReference
from runyard.data.dataset import Dataset
from runyard.pipeline import OutputFileDatasetConfig, Pipeline, PipelineRun, PythonScriptStep
from s3_fixture import s3_client, s3_datastore

pytestmark = pytest.mark.usefixtures("no_stray_processes")

COPY = """
    import pathlib, sys
    raw, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    total = 0
    for f in sorted(raw.glob("*.csv")):
        total += sum(int(line) for line in f.read_text().split()[1:])
    (out / "nested").mkdir()
    (out / "nested" / "total.csv").write_text(f"total\\n{total}\\n")
    print("TOTAL", total)
"""
SHOW = """
    import pathlib, sys
    print("SEEN", (pathlib.Path(sys.argv[1]) / "nested" / "total.csv").read_text().split()[1])
"""


def run_ok(pipeline: Pipeline) -> PipelineRun:
    run = pipeline.submit("s3data", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
    return run


def test_s3_datastore_as_step_input_and_output_destination(
    sqlite_workspace: Workspace, s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    ws = sqlite_workspace
    endpoint, bucket = s3_bucket
    lake = s3_datastore(ws, "lake", endpoint, bucket)
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key="data/raw/a.csv", Body=b"v\n1\n2\n")
    client.put_object(Bucket=bucket, Key="data/raw/b.csv", Body=b"v\n10\n")
    copy_src = SourceDir(tmp_path / "copy").gen({"copy.py": COPY})
    show_src = SourceDir(tmp_path / "show").gen({"show.py": SHOW})

    def pipeline() -> Pipeline:
        raw = DataReference(lake, data_reference_name="raw", path_on_datastore="raw").as_download()
        out = OutputFileDatasetConfig("summary", destination=(lake, "out/{run-id}")).as_upload()
        out.register_on_complete("lake_summary")
        copy = PythonScriptStep("copy.py", name="copy", arguments=[raw, out], source_directory=copy_src)
        show = PythonScriptStep(
            "show.py", name="show", arguments=[out.as_input("summary")], source_directory=show_src
        )
        return Pipeline(ws, [copy, show])

    first = run_ok(pipeline())
    copier = first.find_step_run("copy")[0]
    assert "TOTAL 13" in copier.get_job_log()
    assert "SEEN 13" in first.find_step_run("show")[0].get_job_log()
    key = f"data/out/{copier.id}/nested/total.csv"
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"total\n13\n"  # uploaded to S3
    mirror = (
        ws.get_default_datastore().local_path("").parent / "lake" / "out" / copier.id / "nested" / "total.csv"
    )
    assert mirror.read_text() == "total\n13\n"  # and kept in the local mirror the next step read

    registered = Dataset.get_by_name(ws, "lake_summary")
    assert registered._record.run_id == copier.id
    assert [(f["datastore"], f["path"]) for f in registered._record.files] == [
        ("lake", f"out/{copier.id}/nested/total.csv")
    ]
    assert registered.to_path() == ["/nested/total.csv"]

    used = {(u.direction, u.name): u for u in ws.store.list_dataset_uses(run_id=copier.id)}
    assert used[("input", "raw")].detail["datastore"] == "lake"
    assert used[("output", "summary")].dataset_id == registered.id

    client.put_object(Bucket=bucket, Key="data/raw/b.csv", Body=b"v\n20\n")  # same path, new bytes
    second = run_ok(pipeline())
    why = {r["step"]: r["reason"] for r in second.get_reuse_report() if not r["reused"]}
    assert why["copy"] == "file raw/b.csv under datastore path 'raw' changed"
    assert "TOTAL 23" in second.find_step_run("copy")[0].get_job_log()

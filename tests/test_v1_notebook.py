"""The promise of issue 11, end to end: a v1 notebook (written here, in the style of Microsoft's how-to
notebooks and the DP-100 labs) runs in a real Jupyter kernel after `runyard port --write` and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import invoke_cli
from runyard import Workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder as a v1 user has it: the notebook and the Azure config.json the portal gives."""
    for name in ("RUNYARD_WORKSPACE", "RUNYARD_TRACKING_URI", "RUNYARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "v1" / "tour.ipynb", folder / "tour.ipynb")
    config = {"subscription_id": "0000", "resource_group": "ml-rg", "workspace_name": "ml-tour"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_ported_v1_notebook_runs_in_a_real_kernel(project: Path) -> None:
    ported = invoke_cli("port", "--write", str(project / "tour.ipynb"))  # the command, in this process
    assert ported.returncode == 0, ported.stdout + ported.stderr
    notebook = nbformat.read(project / "tour.ipynb", as_version=4)
    sources = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "azureml" not in sources.replace("azureml-", "")  # every import and dotted use was ported

    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(project)}}
    ).execute()  # raises CellExecutionError, with the cell and its traceback, on the first failing cell

    ws = Workspace.from_config(project)
    assert ws.name == "ml-tour" and ws.path == project / ".runyard"
    runs = {r.experiment_name: r for r in ws.store.list_runs() if r.parent_id is None}
    logging_run = ws.get_run(runs["tour-logging"].run_id)
    assert logging_run.get_metrics()["losses"] == [0.9, 0.5, 0.3]
    assert "outputs/notes.txt" in logging_run.get_file_names()
    pipeline = ws.get_run(runs["tour-pipeline"].run_id)
    assert pipeline.get_status() == "Finished"  # v1's word for a completed pipeline run
    totals = [s.get_metrics().get("total") for s in pipeline.get_steps()]  # type: ignore[attr-defined]
    assert 3 in totals
    assert (
        project / "downloaded" / "azureml"
    ).is_dir()  # PortDataReference.download(p) -> p/<path_on_datastore>

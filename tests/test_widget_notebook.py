"""RunDetails in a real Jupyter kernel: a notebook built with nbformat, executed by nbclient on the venv's
ipykernel. show() returns at once (the next cell runs while the run is active), the widget's state follows
the values the run logs, and its poller stops after the run ends. Checked twice: from inside the kernel
(a cell prints the widget's traits) and from the widget state nbclient stored in the notebook, which is
what a front-end would have drawn. Without anywidget, show() prints the text summary and says how to get
the widget."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

SETUP = """
import json, time
from runyard import Experiment, Workspace
from runyard.widgets import RunDetails
ws = Workspace.create({ws!r})
run = Experiment(ws, "notebook-widget").start_logging(outputs=None, snapshot_directory=None)
run.log("loss", 1.0)
run.log("loss", 0.8)
run.flush()
details = RunDetails(run)
started = time.monotonic()
details.show()
print("SHOWN", json.dumps({{"seconds": time.monotonic() - started, "kind": type(details.widget).__name__}}))
"""
LOG_MORE = """
print("NEXT", json.dumps({"status": run.get_status(), "poller": details._poller.is_alive()}))
for value in (0.6, 0.4, 0.2):
    run.log("loss", value)
run.flush()
time.sleep(2.5)
loss = next(m for m in details.widget.snapshot["run_metrics"] if m["name"] == "loss")
print("STATE", json.dumps(loss["series"][0]["data"]))
"""
SHOW_AGAIN = """
RunDetails(run).show()
RunDetails(run).show()
"""
COMPLETE = """
run.complete()
time.sleep(2.5)
print("FINAL", json.dumps({"status": details.widget.snapshot["status"], "poller": details._poller.is_alive()}))
"""
WITHOUT_ANYWIDGET = """
import sys
saved = {name: sys.modules.pop(name) for name in ("anywidget", "runyard.widgets.view")}
sys.modules["anywidget"] = None  # importing it fails, as when runyard[widgets] is not installed
RunDetails(run).show()
sys.modules.update(saved)
"""


def printed(cell: Any, label: str) -> Any:
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    line = next(line for line in text.splitlines() if line.startswith(label + " "))
    return json.loads(line[len(label) + 1 :])


def test_the_widget_follows_a_live_run_in_a_real_kernel(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(SETUP.format(ws=str(tmp_path / "ws" / ".runyard"))),
        nbformat.v4.new_code_cell(LOG_MORE),
        nbformat.v4.new_code_cell(SHOW_AGAIN),
        nbformat.v4.new_code_cell(COMPLETE),
        nbformat.v4.new_code_cell(WITHOUT_ANYWIDGET),
    ]
    client = NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.monotonic()
    client.execute()
    assert time.monotonic() - started < 45

    shown = printed(notebook.cells[0], "SHOWN")
    assert shown["kind"] == "RunDetailsView" and shown["seconds"] < 2  # show() returned at once
    assert printed(notebook.cells[1], "NEXT") == {"status": "Running", "poller": True}  # next cell ran
    assert printed(notebook.cells[1], "STATE") == [1.0, 0.8, 0.6, 0.4, 0.2]  # followed from the kernel
    assert printed(notebook.cells[3], "FINAL") == {"status": "Completed", "poller": False}  # then stopped
    fallback = "".join(o.get("text", "") for o in notebook.cells[4].outputs if o.output_type == "stream")
    assert "Status: Completed" in fallback and "pip install runyard[widgets]" in fallback  # the text summary
    displayed = [o for o in notebook.cells[0].outputs if o.output_type == "display_data"]
    view = displayed[0]["data"]["application/vnd.jupyter.widget-view+json"]
    assert "Status: Running" in displayed[0]["data"]["text/plain"]  # for viewers without widgets

    # what a front-end would draw: nbclient kept the last state the kernel sent to the widget's model
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    model = state[view["model_id"]]["state"]
    snapshot = model["snapshot"]
    loss = next(m for m in snapshot["run_metrics"] if m["name"] == "loss")
    assert loss["kind"] == "line" and loss["series"][0]["data"] == [1.0, 0.8, 0.6, 0.4, 0.2]
    assert snapshot["status"] == "Completed" and snapshot["run_properties"]["active"] is False
    assert "export default" in model["_esm"] and ".runyard-rd" in model["_css"]

    # plotly.js (4.8 MB) is saved once, in the shared model that each of the three widgets references
    shown = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for cell in notebook.cells[:3]
        for o in cell.outputs
        if o.output_type == "display_data"
    ]
    assert len(shown) == 3
    refs = {state[model_id]["state"]["plotly"] for model_id in shown}
    assert len(refs) == 1
    plotly_model = state[refs.pop().removeprefix("IPY_MODEL_")]
    assert plotly_model["state"]["plotly_js"].lstrip().startswith("/**")  # from the installed package
    assert (
        plotly_model["model_name"] == "WidgetModel"
        and plotly_model["model_module"] == "@jupyter-widgets/base"
    )
    assert sum("plotly_js" in m["state"] for m in state.values()) == 1
    saved = tmp_path / "saved.ipynb"
    nbformat.write(notebook, saved)
    assert 4_800_000 < saved.stat().st_size < 6_000_000  # plotly.js once, not once per show()

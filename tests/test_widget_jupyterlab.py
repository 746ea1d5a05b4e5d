"""RunDetails in JupyterLab, in a real browser: JupyterLab is started on 127.0.0.1 in a folder holding a
notebook, Debian's Chromium opens it and runs all cells, and the widget draws a plotly chart and a log
tail that keep updating while a submitted script run logs and prints. A second cell shows a pipeline run
with a reused step and a chart of its own: plotly.js travels once, in one shared model that both
widgets reference, and the second widget draws with it too. With RUNYARD_WRITE_SCREENSHOTS=1 the test saves docs/images/widget-run.png and
docs/images/widget-pipeline.png.

anywidget's JupyterLab extension comes from the venv (sys.prefix/share/jupyter/labextensions); user
settings, workspaces and runtime files go to the test's folder, and news and update checks are off.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from conftest import SourceDir, clean_settings, free_port, kill_strays
from runyard import Experiment, Workspace
from runyard.pipeline import Pipeline, PipelineData, PythonScriptStep

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
#: Read at import: the autouse fixture hides RUNYARD_* variables from the tests themselves.
WRITE_SCREENSHOTS = os.environ.get("RUNYARD_WRITE_SCREENSHOTS") == "1"
TRAIN = """
import os, sys, time
from runyard import Run
run = Run.get_context()
for epoch in range(8):
    if epoch == 4:  # the test lets the second half run once it has seen the first half drawn
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
            time.sleep(0.05)
    run.log("loss", round(1 / (epoch + 1), 3), step=epoch)
    print(f"epoch {epoch}: loss {1 / (epoch + 1):.3f}", flush=True)
    time.sleep(0.2)
print("training done")
"""
PREP = """
import pathlib, sys
pathlib.Path(sys.argv[1], "data.txt").write_text("1 2 3")
print("prep wrote data")
"""
USE = """
import sys
print("use read", open(sys.argv[1] + "/data.txt").read())
"""
RUN_CELL = """
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.widgets import RunDetails
ws = Workspace.get(".runyard")
run = Experiment(ws, "lab-widget").submit(ScriptRunConfig("train", "train.py", arguments=[{go!r}]))
RunDetails(run).show()
"""
PIPELINE_CELL = """
from runyard.pipeline import Pipeline, PipelineData, PythonScriptStep
data = PipelineData("data")
prep = PythonScriptStep("prep.py", name="prep", arguments=[data], outputs=[data], source_directory="prep")
use = PythonScriptStep("use.py", name="use", arguments=[data], inputs=[data], source_directory="use", allow_reuse=False)
pipeline_run = Experiment(ws, "lab-pipeline").submit(Pipeline(ws, [prep, use]))
pipeline_run.log("rows", 3)
pipeline_run.log("rows", 5)
pipeline_run.flush()
RunDetails(pipeline_run).show()
"""


def pipeline(ws: Workspace, root: Path) -> Pipeline:
    data = PipelineData("data")
    prep = PythonScriptStep(
        "prep.py", name="prep", arguments=[data], outputs=[data], source_directory=str(root / "prep")
    )
    use = PythonScriptStep(
        "use.py",
        name="use",
        arguments=[data],
        inputs=[data],
        source_directory=str(root / "use"),
        allow_reuse=False,
    )
    return Pipeline(ws, [prep, use])


class Lab:
    def __init__(self, url: str, token: str, root: Path) -> None:
        self.url, self.token, self.root = url, token, root


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, env_cache: Path) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    SourceDir(root / "train").gen({"train.py": TRAIN})
    SourceDir(root / "prep").gen({"prep.py": PREP})
    SourceDir(root / "use").gen({"use.py": USE})
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.cells = [
        nbformat.v4.new_code_cell(RUN_CELL.strip().format(go=str(root / "go"))),
        nbformat.v4.new_code_cell(PIPELINE_CELL.strip()),
    ]
    nbformat.write(notebook, root / "widget.ipynb")
    config = root / "jupyter-config"
    config.mkdir()
    settings = {
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
            "expose_app_in_browser": True,
        }
    }
    (config / "jupyter_server_config.json").write_text(json.dumps(settings))
    (config / "labconfig").mkdir()  # no "get notified about Jupyter news?" toast over the widget
    announcements = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (config / "labconfig" / "page_config.json").write_text(json.dumps(announcements))
    token, port = secrets.token_hex(16), free_port()
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_settings(monkeypatch, env_cache)
        monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "3")
        for name, folder in {
            "JUPYTER_CONFIG_DIR": config,
            "JUPYTER_DATA_DIR": root / "jupyter-data",
            "JUPYTER_RUNTIME_DIR": root / "jupyter-runtime",
            "JUPYTERLAB_SETTINGS_DIR": root / "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": root / "lab-workspaces",
        }.items():
            monkeypatch.setenv(name, str(folder))
        log = (root / "jupyterlab.log").open("wb")
        server = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                f"--IdentityProvider.token={token}", "--ServerApp.password=", "--ServerApp.ip=127.0.0.1",
                f"--port={port}", f"--ServerApp.root_dir={root}",
            ],
            cwd=root, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            # while JupyterLab starts: a first pipeline run, so the notebook's run reuses its prep step
            ws = Workspace.create(root / ".runyard")
            Experiment(ws, "lab-pipeline").submit(pipeline(ws, root)).wait_for_completion(show_output=False)
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90  # the first start builds JupyterLab's page config: be patient
            while True:
                assert server.poll() is None, (root / "jupyterlab.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (root / "jupyterlab.log").read_text()[-3000:]
                time.sleep(0.2)
            yield Lab(url, token, root)
        finally:
            server.terminate()
            try:  # it shuts its kernels down politely (seconds); nothing here needs that: kill_strays
                server.wait(3)  # below ends the kernels (they work in `root`) whatever the server did
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
            kill_strays(root)


def chart_points(page: Any) -> int:
    """Points of the first widget's loss chart (plotly keeps the data on its div)."""
    return int(
        page.evaluate(
            "() => { const d = document.querySelector('.runyard-rd .rd-chart[data-metric=loss]');"
            " return d && d.data ? d.data[0].y.length : 0; }"
        )
    )


def test_the_widget_updates_live_in_jupyterlab(lab: Lab, page: Any) -> None:
    page.goto(f"{lab.url}/lab/tree/widget.ipynb?token={lab.token}", timeout=60_000)
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=60_000,
    )
    page.evaluate(
        """async () => {
            const nb = window.jupyterapp.shell.currentWidget;
            await nb.context.ready;
            await nb.sessionContext.ready;
            window.jupyterapp.commands.execute('notebook:run-all-cells');  // resolves when all cells ran
        }"""
    )
    run_widget = page.locator(".runyard-rd").nth(0)
    run_widget.wait_for(timeout=30_000)
    run_widget.locator("pre.rd-log", has_text="epoch 0").wait_for(timeout=20_000)
    run_widget.locator(".rd-chart[data-metric=loss] .main-svg").first.wait_for(timeout=30_000)  # a plotly svg
    run_widget.locator("pre.rd-log", has_text="epoch 3").wait_for(timeout=20_000)
    first_points = chart_points(page)
    first_log = run_widget.locator("pre.rd-log").inner_text()
    assert 2 <= first_points <= 4 and "epoch 4" not in first_log
    (lab.root / "go").touch()  # the run logs the rest: the log tail and the chart follow
    run_widget.locator("pre.rd-log", has_text="training done").wait_for(timeout=20_000)
    page.wait_for_function(
        "() => document.querySelector('.runyard-rd .rd-head .badge').textContent === 'Completed'",
        timeout=20_000,
    )
    assert chart_points(page) == 8
    assert run_widget.locator("pre.rd-log").inner_text() != first_log
    assert "Failed to load model class" not in page.content()

    pipeline_widget = page.locator(".runyard-rd").nth(1)
    pipeline_widget.locator("svg.graph .node").nth(1).wait_for(timeout=20_000)
    page.wait_for_function(
        "() => { const w = document.querySelectorAll('.runyard-rd')[1];"
        " return w && w.querySelector('.rd-head .badge').textContent === 'Completed'; }",
        timeout=30_000,
    )
    assert pipeline_widget.locator("svg.graph .node.st-reused").count() == 1  # prep, from the fixture's run
    assert pipeline_widget.locator("svg.graph .node.st-completed").count() == 1
    pipeline_widget.locator(".rd-chart[data-metric=rows] .main-svg").first.wait_for(timeout=10_000)
    pipeline_widget.locator("svg.graph .node[data-step=prep]").click()  # select a step: its log comes back
    pipeline_widget.locator("pre.rd-log", has_text="prep wrote data").wait_for(timeout=10_000)

    if WRITE_SCREENSHOTS:
        IMAGES.mkdir(parents=True, exist_ok=True)
        run_widget.screenshot(path=str(IMAGES / "widget-run.png"))
        pipeline_widget.screenshot(path=str(IMAGES / "widget-pipeline.png"))

"""What a job pays for `import runyard; run = Run.get_context(); run.log(...)`: no database, HTTP, web,
data-frame or plotting library is imported (docs/architecture.md, "The job's hot path").

The jobs are real: a ScriptRunConfig submitted to a workspace in tmp_path and a one-step pipeline, each
with its supervisor or scheduler. Their scripts write `sorted(sys.modules)` to outputs/, taken right
after Run.get_context() and again after run.log(), and the tests read those lists back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import runyard
import runyard.core
import runyard.store
from conftest import SourceDir, clean_settings
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.pipeline import PipelineRun, PythonScriptStep
from runyard.pipeline.pipeline import Pipeline

#: Packages a job that only records must never import (contract C2 of issue 17): the store's database
#: and HTTP clients, the server's web stack, data frames and arrays, remote file systems, templating,
#: terminal rendering, the CLI, plotting, MLflow.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "httpx",
    "fastapi",
    "starlette",
    "pydantic",
    "pandas",
    "numpy",
    "pyarrow",
    "fsspec",
    "jinja2",
    "rich",
    "typer",
    "plotly",
    "mlflow",
)

#: runyard's own modules that open a store: loading one would mean get_context() read the store.
STORE_CLIENTS = ("runyard.store.sql_store", "runyard.store.rest_store")

JOB_SCRIPT = """
    import json, pathlib, sys

    import runyard

    run = runyard.Run.get_context()
    after_context = sorted(sys.modules)
    run.log("x", 1.0)
    after_log = sorted(sys.modules)
    seen = {
        "context": after_context,
        "log": after_log,
        "class": type(run).__name__,
        "experiment": run.experiment.name,  # may read the store: taken after both lists
    }
    pathlib.Path("outputs").mkdir(exist_ok=True)
    pathlib.Path("outputs", "modules.json").write_text(json.dumps(seen))
"""


#: The same job as a ported v1 script writes it: `azureml.core` is runyard.v1.core in every job.
V1_JOB_SCRIPT = JOB_SCRIPT.replace("import runyard\n", "from azureml.core import Run\n").replace(
    "runyard.Run.get_context()", "Run.get_context()"
)


def heavy_among(modules: list[str]) -> list[str]:
    """The HEAVY packages (or their submodules) among `modules`, sorted."""
    return sorted({m.partition(".")[0] for m in modules} & set(HEAVY))


@dataclass
class Jobs:
    ws: Workspace
    script_run: Run
    v1_run: Run
    pipeline_run: PipelineRun
    folder: Path

    def modules_seen(self, run: Run) -> dict[str, object]:
        """What the job's script wrote to outputs/modules.json."""
        target = self.folder / f"{run.id}.json"
        run.download_file("outputs/modules.json", str(target))
        seen: dict[str, object] = json.loads(target.read_text())
        return seen


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, env_cache: Path) -> Iterator[Jobs]:
    """One submitted script and one single-step pipeline, both running JOB_SCRIPT, waited for."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_settings(monkeypatch, env_cache)
        root = tmp_path_factory.mktemp("job-imports")
        ws = Workspace.create(root / ".runyard")
        script = SourceDir(root / "script").gen({"job.py": JOB_SCRIPT})
        step_source = SourceDir(root / "step").gen({"job.py": JOB_SCRIPT})
        v1_source = SourceDir(root / "v1").gen({"job.py": V1_JOB_SCRIPT})
        script_run = Experiment(ws, "job-imports").submit(ScriptRunConfig(script, "job.py"))
        v1_run = Experiment(ws, "job-imports").submit(ScriptRunConfig(v1_source, "job.py"))
        step = PythonScriptStep("job.py", name="step", source_directory=str(step_source))
        pipeline_run = Pipeline(ws, [step]).submit("job-imports-pipeline", show_output=False)
        try:
            script_run.wait_for_completion(raise_on_error=True)
            v1_run.wait_for_completion(raise_on_error=True)
            assert pipeline_run.wait_for_completion(show_output=False, timeout_seconds=90) == "Finished"
            yield Jobs(ws, script_run, v1_run, pipeline_run, root)
        finally:
            script_run.wait_for_completion(raise_on_error=False)
            v1_run.wait_for_completion(raise_on_error=False)
            pipeline_run.wait_for_completion(show_output=False, timeout_seconds=90, raise_on_error=False)


def test_get_context_in_a_submitted_script_imports_nothing_heavy_and_reads_no_store(jobs: Jobs) -> None:
    seen = jobs.modules_seen(jobs.script_run)
    context = list(seen["context"])  # type: ignore[call-overload]
    assert heavy_among(context) == []
    assert [m for m in STORE_CLIENTS if m in context] == []
    assert (seen["class"], seen["experiment"]) == ("Run", "job-imports")


def test_a_ported_v1_script_imports_nothing_heavy(jobs: Jobs) -> None:
    """`from azureml.core import Run` loads Run, not the datasets, environments and compute targets that
    azureml.core also names (runyard.v1 modules re-export on first use)."""
    seen = jobs.modules_seen(jobs.v1_run)
    for moment in ("context", "log"):
        modules = list(seen[moment])  # type: ignore[call-overload]
        assert heavy_among(modules) == [], moment
        assert [m for m in modules if m.startswith(("runyard.data", "runyard.environments"))] == [], moment
    assert (seen["class"], seen["experiment"]) == ("Run", "job-imports")
    assert jobs.v1_run.get_metrics() == {"x": 1.0}


def test_run_log_in_a_job_imports_nothing_heavy_and_the_value_arrives(jobs: Jobs) -> None:
    (step,) = jobs.pipeline_run.find_step_run("step")
    for run in (jobs.script_run, step):
        seen = jobs.modules_seen(run)
        assert heavy_among(list(seen["log"])) == [], run.type  # type: ignore[call-overload]
        assert run.get_metrics() == {"x": 1.0}


def test_get_context_in_a_pipeline_step_gives_its_step_run_without_heavy_imports(jobs: Jobs) -> None:
    (step,) = jobs.pipeline_run.find_step_run("step")
    seen = jobs.modules_seen(step)
    context = list(seen["context"])  # type: ignore[call-overload]
    assert heavy_among(context) == []
    assert [m for m in STORE_CLIENTS if m in context] == []
    assert (seen["class"], seen["experiment"]) == ("StepRun", "job-imports-pipeline")


def fresh_python(code: str) -> list[str]:
    """Run `code` in a new interpreter; it prints a JSON list, returned here."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    result: list[str] = json.loads(out.stdout)
    return result


def test_import_runyard_imports_nothing_heavy() -> None:
    modules = fresh_python("import json, sys, runyard; print(json.dumps(sorted(sys.modules)))")
    assert heavy_among(modules) == []
    # nor the layers above core: they load when first used
    assert [
        m for m in modules if m.startswith(("runyard.pipeline", "runyard.engine", "runyard.compute."))
    ] == []


@pytest.mark.parametrize("package", [runyard, runyard.core, runyard.store], ids=lambda p: p.__name__)
def test_every_public_name_resolves(package: ModuleType) -> None:
    names = list(package.__all__)
    assert names
    for name in names:
        assert getattr(package, name) is not None, name
        assert name in dir(package), name
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        _ = package.NoSuchName


def test_star_imports_give_every_public_name() -> None:
    code = (
        "import json; from runyard import *; from runyard.core import *; from runyard.store import *; "
        "print(json.dumps(sorted(k for k in globals() if not k.startswith('__'))))"
    )
    names = set(fresh_python(code))
    expected = {*runyard.__all__, *runyard.core.__all__, *runyard.store.__all__} - {"__version__"}
    assert expected <= names

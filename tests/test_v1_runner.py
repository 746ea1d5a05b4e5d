"""`python -m runyard.v1 script.py`: unported v1 code runs, here and in every job it submits.

Everything runs as real subprocesses: the runner, the background scheduler, the step and script jobs.
A script run through the runner must behave exactly as under `python script.py` (argv, sys.path[0],
exit codes, signals, tracebacks), so several tests compare the two outright.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runyard import Workspace
from runyard.compute.process_job import script_argv
from runyard.pipeline import PipelineRun

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "v1"
LAUNCHER = script_argv("SCRIPT", [])[:-1]  # [python, -u, -P, .../v1_imports.py]


def runner(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runyard.v1", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.usefixtures("no_stray_processes")
def test_unported_script_submits_a_pipeline_and_a_job_whose_scripts_import_azureml(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    result = runner(
        str(EXAMPLES / "pipeline_unported.py"), cwd=tmp_path, env={"RUNYARD_WORKSPACE": str(ws.path)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ids = dict(re.findall(r"^(interactive run|pipeline run|script run): (\S+)", result.stdout, re.M))
    assert f"pipeline run: {ids['pipeline run']} Finished" in result.stdout
    assert f"script run: {ids['script run']} Completed" in result.stdout

    assert ws.get_run(ids["interactive run"]).get_metrics() == {"stage": 1}
    pipeline_run = PipelineRun.get(ws, ids["pipeline run"])
    (step,) = pipeline_run.find_step_run("log-step")
    assert step.get_metrics() == {"step_value": 0.5}  # Run.get_context() in the step: azureml.core resolved
    script_run = ws.get_run(ids["script run"])
    assert script_run.get_metrics() == {"alpha": 0.25}
    assert b"trained with alpha 0.25" in script_run.read_log("azureml-logs/70_driver_log.txt")


def test_azureml_names_are_runyard_v1_module_objects(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import azureml
            import azureml.core
            import azureml.pipeline.steps as steps
            from azureml.core import Workspace
            import runyard.v1
            import runyard.v1.core
            import runyard.v1.pipeline.steps

            assert azureml is runyard.v1
            assert azureml.core is runyard.v1.core is sys.modules["azureml.core"]
            assert Workspace is runyard.v1.core.Workspace
            assert steps is runyard.v1.pipeline.steps
            assert runyard.v1.core.__spec__.name == "runyard.v1.core"  # the alias does not rename it
            print("argv", sys.argv, "path0", sys.path[0], "name", __name__, "file", __file__)
            """
        )
    )
    (tmp_path / "other").mkdir()
    result = runner("../probe.py", "--x", "1", cwd=tmp_path / "other")
    assert result.returncode == 0, result.stderr
    assert f"argv ['../probe.py', '--x', '1'] path0 {tmp_path} name __main__ file {script}" in result.stdout
    # nothing is installed under the name azureml: a plain interpreter does not find it
    plain = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('azureml'))"],
        capture_output=True,
        text=True,
    )
    assert plain.stdout.strip() == "None"


def test_a_missing_v1_module_names_the_runyard_module_and_the_surface_doc(tmp_path: Path) -> None:
    script = tmp_path / "estimator.py"
    script.write_text("import azureml.core\nfrom azureml.train.estimator import Estimator\n")
    result = runner(str(script), cwd=tmp_path)
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'azureml.train'" in result.stderr
    assert "runyard.v1 has no module 'runyard.v1.train'" in result.stderr
    assert "docs/v1-surface.md" in result.stderr
    first_frame = re.search(r'File "([^"]+)"', result.stderr)
    assert first_frame is not None and first_frame.group(1) == str(
        script
    )  # the runner's frames are not shown


CASES = {
    "raises": "def f():\n    raise ValueError('boom')\n\nprint('before')\nf()\n",
    "exits": "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n",
    "interrupted": "raise KeyboardInterrupt\n",
    "killed": "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
    "syntax": "x = (\n",
    "imports_azureml_fine": "print('ok')\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("how", ["-m runyard.v1", "job launcher"])
def test_script_behaves_exactly_as_under_plain_python(tmp_path: Path, case: str, how: str) -> None:
    script = tmp_path / f"{case}.py"
    script.write_text(CASES[case])
    wrapped = [sys.executable, "-m", "runyard.v1"] if how == "-m runyard.v1" else LAUNCHER
    plain = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True, text=True)
    ours = subprocess.run([*wrapped, script.name], cwd=tmp_path, capture_output=True, text=True)
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def test_usage_and_missing_script(tmp_path: Path) -> None:
    usage = runner(cwd=tmp_path)
    assert usage.returncode == 2 and "usage: python -m runyard.v1 SCRIPT.py" in usage.stderr
    missing = runner("nope.py", cwd=tmp_path)
    assert missing.returncode == 2 and "can't open file" in missing.stderr and "nope.py" in missing.stderr

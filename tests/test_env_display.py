"""A run's environment is on its record, its studio page and `runyard runs show`: which build ran the job
(name, hash, Python, requirements) and whether this run built it, reused it, or waited for another's build."""

from __future__ import annotations

from pathlib import Path

import httpx

from conftest import invoke_cli
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.environments import CondaDependencies, Environment
from server_process import running_server


def _offline_env(links: Path) -> Environment:
    """Builds without the package index: azureml-defaults is provided by runyard. An empty --find-links
    folder of this test's own enters the hash (by its path and listing), so no other test's build in the
    shared cache has it: the first run here builds."""
    links.mkdir()
    env = Environment("shown-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["azureml-defaults"])
    env.python.conda_dependencies.set_pip_option(f"--find-links {links}")
    return env


def test_a_runs_environment_is_shown_built_then_reused(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text("print('hello from the environment')\n")
    env = _offline_env(tmp_path / "links")
    runs = []
    for _ in range(2):
        run = Experiment(ws, "shown").submit(
            ScriptRunConfig(source_directory=src, script="job.py", environment=env)
        )
        run.wait_for_completion(show_output=False)
        assert run.get_status() == "Completed"
        runs.append(run)
    first, second = (r._record.data["environmentUsed"] for r in (ws.get_run(r.id) for r in runs))
    assert first["name"] == second["name"] == "shown-env"
    assert first["hash"] == second["hash"] and len(first["hash"]) == 64
    assert first["built"] is True and second["built"] is False
    assert second["interpreter"].startswith(second["location"]) and second["requirements"] == []

    shown = invoke_cli("--workspace", str(ws.path), "runs", "show", runs[1].id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    start = lines.index("Environment:")
    assert lines[start + 1 : start + 3] == ["  Name: shown-env", f"  Hash: {first['hash'][:12]}"]
    assert any(line.startswith("  Build: reused an earlier build") for line in lines)
    assert "  Requirements: none (runyard's layer only)" in lines

    with running_server(ws.path, tmp_path / "server.log") as server:
        page = httpx.get(f"{server.url}/runs/{runs[0].id}").text
    block = page[page.index("<caption>Environment</caption>") :]
    assert f"<td>{first['hash'][:12]}</td>" in block
    assert "built by this run in" in block and "20_image_build_log.txt" in block


def test_a_run_without_an_environment_shows_none(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text("print('plain')\n")
    run = Experiment(ws, "plain").submit(ScriptRunConfig(source_directory=src, script="job.py"))
    run.wait_for_completion(show_output=False)
    assert "environmentUsed" not in ws.get_run(run.id)._record.data
    shown = invoke_cli("--workspace", str(ws.path), "runs", "show", run.id)
    assert shown.returncode == 0 and "Environment:" not in shown.stdout

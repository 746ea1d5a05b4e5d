"""The public surface is pinned: changing it must be a deliberate edit here and in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import runyard
from runyard.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_names_are_pinned() -> None:
    assert sorted(runyard.__all__) == sorted(
        [
            "ActivityFailedException",
            "AmlCompute",
            "ComputeTarget",
            "ComputeTargetException",
            "Datastore",
            "Experiment",
            "Model",
            "ModelNotFoundException",
            "Run",
            "RunConfiguration",
            "RunStatus",
            "RunyardError",
            "ScriptRunConfig",
            "UserErrorException",
            "Workspace",
            "__version__",
        ]
    )
    for name in runyard.__all__:
        assert hasattr(runyard, name), name


def _command_names() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        names.extend(f"{name} {s}" for s in sub) if sub else names.append(name)
    return names


def test_every_cli_command_is_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    documented = set(re.findall(r"`runyard ([a-z]+(?: [a-z]+)?)", doc))
    missing = [c for c in _command_names() if c not in documented and c.split()[0] not in documented]
    assert not missing, f"commands missing from docs/cli.md: {missing}"
    assert len(_command_names()) >= 9


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    used = set()
    for path in (ROOT / "src" / "runyard").rglob("*.py"):
        used.update(re.findall(r'"(RUNYARD_[A-Z_]+)"', path.read_text()))
    internal = {
        "RUNYARD_RUN_ID",
        "RUNYARD_TRACKING_URI",
        "RUNYARD_EXPERIMENT_NAME",
        "RUNYARD_SPOOL_DIR",
        "RUNYARD_RUN_TYPE",
        "RUNYARD_DETACHED",
        # scheduler -> ParallelRunStep driver -> worker plumbing (docs/parallel.md), never set by users
        "RUNYARD_PARALLEL_JOB",
    }
    missing = sorted(used - internal - set(re.findall(r"`(RUNYARD_[A-Z_]+)`", doc)))
    assert not missing, f"settings missing from docs/cli.md: {missing}"

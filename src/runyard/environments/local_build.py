"""Environment.build()/build_local(), get_image_details() and from_existing_conda_environment()'s export:
what the environment API does on this machine.

Why a module of its own: v1 describes a Docker image here (ImageBuildDetails, the image details dict); runyard's
answer is the virtual environment a run would use, found by the plan's hash in the build cache. Building and
describing need plan.py and build.py, which environment.py only imports when one of these is called, so
`import azureml.core` stays cheap.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runyard.errors import EnvironmentDefinitionError


class LocalBuild:
    """What build()/build_local() return: the finished build, with v1's ImageBuildDetails reading
    methods. The build already happened (or failed with EnvironmentBuildError) when this exists."""

    def __init__(self, prepared: Any, lines: list[str]) -> None:
        self.prepared = prepared
        self._lines = lines

    @property
    def status(self) -> str:
        return "Succeeded"

    def get_log(self) -> str:
        """The build log, or a line naming the earlier build of the same hash that was reused."""
        reused = f"Reused the build of hash {self.prepared.plan.hash[:12]} in {self.prepared.location}"
        return str(self.prepared.build_log) or "\n".join(self._lines) or reused

    def wait_for_completion(self, show_output: bool = False) -> dict[str, Any]:
        if show_output:
            print(self.get_log())
        return {"status": self.status, "location": self.prepared.location, "python": self.prepared.python}


def build_now(definition: Mapping[str, Any]) -> LocalBuild:
    """Plan and prepare the environment of `definition` (a build, or the cached build of its hash)."""
    from runyard.environments.build import prepare_environment
    from runyard.environments.plan import plan_environment

    lines: list[str] = []
    prepared = prepare_environment(plan_environment(definition), say=lines.append)
    return LocalBuild(prepared, lines)


def image_details(definition: Mapping[str, Any]) -> dict[str, Any]:
    """What a build of this definition is: its hash, folder (empty when not built yet), Python, the
    interpreter a job starts (the build's bin/python; the given one for user-managed dependencies; empty
    when not built yet) and requirements."""
    from runyard.environments.build import list_builds
    from runyard.environments.plan import plan_environment

    plan = plan_environment(definition)
    built = None if plan.user_managed else next((b for b in list_builds() if b.hash == plan.hash), None)
    if plan.user_managed:
        interpreter = plan.interpreter
    else:
        interpreter = str(Path(built.location) / "bin" / "python") if built else ""
    return {
        "name": definition.get("name"),
        "version": definition.get("version"),
        "hash": plan.hash,
        "imageExistsInRegistry": built is not None,
        "location": built.location if built else "",
        "python": plan.python,
        "pythonEnvironment": {"interpreterPath": interpreter},
        "requirements": list(plan.requirements),
        "userManaged": plan.user_managed,
    }


def export_conda_environment(conda_environment_name: str) -> bytes | None:
    """`conda env export` of a conda environment on this machine, None when the export fails (v1 prints
    the exit code and returns None). Without conda on PATH: an error saying what to do instead."""
    conda = shutil.which("conda")
    if conda is None:
        raise EnvironmentDefinitionError(
            f"Cannot read conda environment {conda_environment_name!r}: conda is not installed here; "
            "export the environment to a file with `conda env export` elsewhere and use "
            "Environment.from_conda_specification(name, file_path)."
        )
    try:
        return subprocess.run(
            [conda, "env", "export", "--no-builds", "--name", conda_environment_name],
            capture_output=True,
            check=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        print(f"Exporting conda specifications failed with exit code: {exc.returncode}")
        return None

"""ScriptRunConfig: what to run (a script in a source directory, with arguments) and where."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.core.run import MAX_ID_BYTES
from runyard.core.snapshot import copy_snapshot
from runyard.core.targets import launcher_for
from runyard.errors import InvalidInputError
from runyard.status import RunStatus

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.run import Run


class ScriptRunConfig:
    def __init__(
        self,
        source_directory: str | os.PathLike[str],
        script: str | None = None,
        arguments: list[Any] | None = None,
        run_config: Any = None,
        _telemetry_values: Any = None,
        compute_target: Any = None,
        environment: Any = None,
        distributed_job_config: Any = None,
        resume_from: Any = None,
        max_run_duration_seconds: int = 2592000,
        command: list[Any] | str | None = None,
        docker_runtime_config: Any = None,
    ) -> None:
        if script is None and command is None:
            raise InvalidInputError("ScriptRunConfig needs script='train.py' (or command=[...]).")
        if script is not None and command is not None:
            raise InvalidInputError("ScriptRunConfig takes script= or command=, not both.")
        if run_config is not None:
            raise InvalidInputError(
                "ScriptRunConfig(run_config=...) is not supported: Azure ML silently drops compute_target and "
                "environment when it is given. Pass compute_target= and environment= directly."
            )
        self.source_directory = str(source_directory)
        self.script = script
        self.arguments = list(arguments or [])
        self.command = command
        self.compute_target = compute_target or "local"
        self.environment = environment
        self.max_run_duration_seconds = max_run_duration_seconds

    def _check_script(self) -> Path:
        source = Path(self.source_directory).expanduser().resolve()
        if not source.is_dir():
            raise InvalidInputError(f"source_directory {self.source_directory!r} is not a folder.")
        if self.script is not None:
            script = (source / self.script).resolve()
            if not script.is_relative_to(source):
                raise InvalidInputError(
                    f"Script {self.script!r} lies outside the source directory {source}. Put the script inside "
                    "source_directory and pass its path relative to it."
                )
            if not script.is_file():
                raise InvalidInputError(
                    f"Script {self.script!r} does not exist in the source directory {source}."
                )
        return source

    def run_definition(self) -> dict[str, Any]:
        return {
            "script": self.script,
            "command": self.command,
            "arguments": [str(a) for a in self.arguments],
            "sourceDirectory": str(Path(self.source_directory).expanduser().resolve()),
            "target": str(getattr(self.compute_target, "name", self.compute_target)),
            "environment": getattr(self.environment, "name", self.environment),
            "maxRunDurationSeconds": self.max_run_duration_seconds,
        }

    def _submit_to(self, experiment: Experiment, tags: dict[str, Any] | None, **kwargs: Any) -> Run:
        source = self._check_script()
        launcher = launcher_for(self.compute_target)
        suffix = f"_{int(time.time())}_{secrets.token_hex(4)}"
        # Azure ML's form; a long experiment name is cut so the id still names a folder (255 bytes at most).
        prefix = experiment.name
        while len((prefix + suffix).encode()) > MAX_ID_BYTES:
            prefix = prefix[:-1]
        run_id = prefix + suffix
        definition = self.run_definition()
        work = experiment.workspace.work_dir / run_id
        files = copy_snapshot(source, work / "snapshot")
        run = experiment._create_run(
            run_id=run_id,
            run_type="azureml.scriptrun",
            status=RunStatus.NOT_STARTED,
            target=definition["target"],
            data={"runDefinition": definition, "snapshotFileCount": len(files)},
        )
        if tags:
            run.set_tags(tags)
        experiment.workspace.store.set_run_status(run_id, RunStatus.QUEUED)
        launcher.start(experiment.workspace, run_id)
        run._refresh()
        return run

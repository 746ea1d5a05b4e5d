"""ScriptRunConfig: what to run (a script in a source directory, with arguments) and where.

RunConfiguration and DockerConfiguration are re-exported here as in v1's module."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.compat import check_keywords, v1_ignores, v1_keywords
from runyard.core.environment_use import definition_for, environment_name
from runyard.core.run import MAX_ID_BYTES
from runyard.core.run_snapshots import SNAPSHOT_KEY
from runyard.core.runconfig import DockerConfiguration, RunConfiguration
from runyard.core.script_inputs import (
    INPUTS_FILE,
    assign_paths,
    check_names,
    discard,
    input_environment,
    materialize_inputs,
    plan_inputs,
    record_input_uses,
    substitute,
    write_inputs_file,
)
from runyard.core.script_outputs import output_environment, resolve_outputs
from runyard.core.snapshot import copy_snapshot
from runyard.core.targets import launcher_for
from runyard.errors import InvalidInputError
from runyard.status import RunStatus
from runyard.store.snapshots import SnapshotStore

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.run import Run


__all__ = ["DockerConfiguration", "RunConfiguration", "ScriptRunConfig"]

_ONE_PROCESS = "a local job runs one process; distributed jobs arrive with the Ray target"


@v1_keywords
class ScriptRunConfig:
    """A script (or command) in a source directory, with its arguments, target and environment.

    `run_config=` (a RunConfiguration) is read for script, arguments, command, target, environment,
    node_count, max_run_duration_seconds, environment_variables and docker. What is passed to
    ScriptRunConfig itself wins over the run_config's value (v1 keeps the run_config's target and
    environment and drops the explicit ones with a log line; a silently dropped argument is a bug).
    The settings live on `self.run_config`, as in v1, so `src.run_config.target = ...` after
    construction works too.
    """

    @v1_ignores(
        distributed_job_config=_ONE_PROCESS,
        resume_from="runyard does not resume runs from a checkpoint DataPath",
    )
    def __init__(
        self,
        source_directory: str | os.PathLike[str],
        script: str | None = None,
        arguments: list[Any] | None = None,
        run_config: RunConfiguration | None = None,
        _telemetry_values: Any = None,
        compute_target: Any = None,
        environment: Any = None,
        distributed_job_config: Any = None,
        resume_from: Any = None,
        max_run_duration_seconds: int = 2592000,
        command: list[Any] | str | None = None,
        docker_runtime_config: DockerConfiguration | None = None,
    ) -> None:
        if run_config is not None and not isinstance(run_config, RunConfiguration):
            raise InvalidInputError(
                f"run_config must be a RunConfiguration, got {type(run_config).__name__}. Build one with "
                "RunConfiguration() (from runyard.v1.core.runconfig), or pass compute_target= and "
                "environment= directly."
            )
        self.run_config = run_config if run_config is not None else RunConfiguration()
        self.source_directory = str(source_directory)
        self.script = script if script is not None else self.run_config.script
        self.command = command if command is not None else self.run_config.command
        if self.script is None and self.command is None:
            raise InvalidInputError("ScriptRunConfig needs script='train.py' (or command=[...]).")
        if self.script is not None and self.command is not None:
            raise InvalidInputError("ScriptRunConfig takes script= or command=, not both.")
        self.arguments = list(arguments if arguments is not None else self.run_config.arguments)
        if compute_target is not None:
            self.run_config.target = compute_target
        if environment is not None:
            self.run_config.environment = environment
        if max_run_duration_seconds != 2592000 or self.run_config.max_run_duration_seconds is None:
            self.run_config.max_run_duration_seconds = max_run_duration_seconds
        if docker_runtime_config is not None:
            self.run_config.docker = docker_runtime_config
        node_count = getattr(distributed_job_config, "node_count", None)
        if node_count is not None:
            self.run_config.node_count = int(node_count)

    @property
    def compute_target(self) -> Any:
        """The run_config's target: 'local', a target name or a compute target object."""
        return self.run_config.target

    @compute_target.setter
    def compute_target(self, value: Any) -> None:
        self.run_config.target = value

    @property
    def environment(self) -> Any:
        return self.run_config.environment

    @environment.setter
    def environment(self, value: Any) -> None:
        self.run_config.environment = value

    @property
    def max_run_duration_seconds(self) -> int:
        return int(self.run_config.max_run_duration_seconds or 2592000)

    def _check_script(self) -> Path:
        source = Path(self.source_directory).expanduser().resolve()
        if not source.is_dir():
            raise InvalidInputError(f"source_directory {self.source_directory!r} is not a folder.")
        if self.script is not None:
            if not isinstance(self.script, str) or not self.script or "\x00" in self.script:
                raise InvalidInputError(f"script must name a file in source_directory, got {self.script!r}.")
            if self.script.startswith("-"):
                # The job runs `python -u SCRIPT`: '-m…' or '-c…' would be read as an interpreter option and
                # run a module or code instead of the file. Pipeline steps refuse it too (graph_spec).
                raise InvalidInputError(
                    f"Script {self.script!r} starts with '-', which Python would read as an option such as -c "
                    "or -m, not as a script. Rename the file so its name does not start with '-'."
                )
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

    def run_definition(
        self, arguments: list[str] | None = None, environment: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """What the job runs, as recorded on the run (`arguments`: already resolved, see script_outputs;
        `environment`: the environment JSON resolved at submit, core/environment_use.py)."""
        cfg = self.run_config
        return {
            "script": self.script,
            "command": self.command,
            "arguments": arguments if arguments is not None else [str(a) for a in self.arguments],
            "sourceDirectory": str(Path(self.source_directory).expanduser().resolve()),
            "target": cfg.target_name,
            "environment": environment_name(cfg.environment, environment),
            "environmentDefinition": environment,
            "maxRunDurationSeconds": self.max_run_duration_seconds,
            "nodeCount": int(cfg.node_count or 1),
            "environmentVariables": {str(k): str(v) for k, v in cfg.environment_variables.items()},
            "docker": cfg.docker._to_dict(),
        }

    def _submit_to(self, experiment: Experiment, tags: dict[str, Any] | None, **kwargs: Any) -> Run:
        # v1's script-run submit takes no further settings here (run_id / credential_passthrough are
        # service details): a keyword meant for a pipeline, or a typo, must not vanish.
        check_keywords("Experiment.submit(ScriptRunConfig)", kwargs, [])
        source = self._check_script()
        launcher = launcher_for(self.compute_target, experiment.workspace)
        suffix = f"_{int(time.time())}_{secrets.token_hex(4)}"
        # Azure ML's form; a long experiment name is cut so the id still names a folder (255 bytes at most).
        prefix = experiment.name
        while len((prefix + suffix).encode()) > MAX_ID_BYTES:
            prefix = prefix[:-1]
        run_id = prefix + suffix
        self.run_config.warn_ignored_settings("ScriptRunConfig")
        ws = experiment.workspace
        # The environment is resolved now (a registered name to its definition): an unknown name or a
        # definition that is not JSON fails the submit before anything exists.
        environment = definition_for(ws, self.run_config.environment)
        work = ws.work_dir / run_id
        # Every input is validated and pinned to its bytes before anything is written (a registered version
        # whose files changed is refused here); then outputs, snapshot and input folders are made, and a
        # failure on the way removes what was made: a refused submit leaves no run and no folder.
        inputs = plan_inputs(ws, self.arguments)
        assign_paths(inputs, work)
        arguments, outputs = resolve_outputs(ws, run_id, substitute(self.arguments, inputs))
        try:
            check_names(inputs, outputs)
            files = copy_snapshot(source, work / "snapshot")
            materialize_inputs(ws, inputs, work)
            write_inputs_file(inputs, work / INPUTS_FILE)
        except BaseException:
            discard(work, outputs)
            raise
        definition = self.run_definition(arguments, environment)
        definition["environmentVariables"].update(output_environment(outputs))
        definition["environmentVariables"].update(input_environment(inputs, work / INPUTS_FILE))
        # Also kept content-addressed, so run.restore_snapshot() works after the working copy is gone.
        snapshot = SnapshotStore(ws.artifacts).save(work / "snapshot", files)
        data: dict[str, Any] = {
            "runDefinition": definition,
            "snapshotFileCount": len(files),
            SNAPSHOT_KEY: snapshot.id,
        }
        if outputs:
            data["outputDatasets"] = [o.as_record() for o in outputs]
        run = experiment._create_run(
            run_id=run_id,
            run_type="azureml.scriptrun",
            status=RunStatus.NOT_STARTED,
            target=definition["target"],
            data=data,
        )
        try:
            record_input_uses(ws, run_id, inputs)
        except BaseException as exc:  # a run that cannot say what it reads does not start
            ws.store.set_run_status(
                run_id,
                RunStatus.FAILED,
                error={"code": "SystemError", "message": f"Recording inputs failed: {exc}"},
            )
            discard(work, outputs)
            raise
        if tags:
            run.set_tags(tags)
        ws.store.set_run_status(run_id, RunStatus.QUEUED)
        launcher.start(ws, run_id)
        run._refresh()
        return run

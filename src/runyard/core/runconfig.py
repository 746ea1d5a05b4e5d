"""RunConfiguration and DockerConfiguration: v1's "how to run" objects, kept for code that builds them.

What runyard honours from a RunConfiguration: `script`, `arguments`, `command`, `target` (a target
name or a compute target object), `environment` (an Environment: v1's
`Environment("default-environment")` unless set, which left untouched means "the submitting interpreter
as is", see environments/definition.py), `conda_dependencies` (put into environment.python),
`environment_variables` (set in the job's process), `max_run_duration_seconds`,
`node_count` (recorded; one process runs, with a one-time warning when more are asked for) and
`docker.use_docker=False`. Docker settings that ask for a container are accepted with the one-time
warning: every job here is a local process. `ScriptRunConfig(run_config=...)` reads these; see
docs/azureml-differences.md for which settings win when both it and ScriptRunConfig name one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runyard.compat import v1_ignores, v1_keywords, warn_ignored
from runyard.environments.definition import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_ENVIRONMENT_NAME,
    DEFAULT_GPU_IMAGE,
)
from runyard.environments.environment import Environment
from runyard.errors import InvalidInputError, NotFoundError

__all__ = ["DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE", "DockerConfiguration", "RunConfiguration"]

_NO_DOCKER = "runyard runs every job as a local process, without a container"
_ONE_NODE = "a local job runs one process; multi-node jobs arrive with the Ray target"
_RUNCONFIG_DIR = ".azureml"
_SUFFIX = ".runconfig"


@v1_keywords
class DockerConfiguration:
    """v1's Docker settings for a job. `use_docker=False` (the default) is what runyard does anyway."""

    @v1_ignores(use_docker=_NO_DOCKER, shared_volumes=_NO_DOCKER, arguments=_NO_DOCKER, shm_size=_NO_DOCKER)
    def __init__(
        self,
        use_docker: bool = False,
        shared_volumes: bool = True,
        arguments: list[str] = [],  # noqa: B006 - v1's default; copied below, never mutated
        shm_size: str = "2g",
    ) -> None:
        self.use_docker = use_docker
        self.shared_volumes = shared_volumes
        self.arguments = list(arguments or [])
        self.shm_size = shm_size

    def warn_if_docker(self, where: str) -> None:
        """Warn once when these settings ask for a container (they may be set after construction)."""
        if self.use_docker:
            warn_ignored(where, "docker.use_docker", _NO_DOCKER)

    def _to_dict(self) -> dict[str, Any]:
        return {
            "useDocker": self.use_docker,
            "sharedVolumes": self.shared_volumes,
            "arguments": self.arguments,
            "shmSize": self.shm_size,
        }

    def __repr__(self) -> str:
        return f"DockerConfiguration(use_docker={self.use_docker!r})"


@v1_keywords
class RunConfiguration:
    """Everything about how a script runs, in one object (v1's RunConfiguration)."""

    @v1_ignores(framework=_ONE_NODE, communicator=_ONE_NODE)
    def __init__(
        self,
        script: str | None = None,
        arguments: list[Any] | None = None,
        framework: str | None = None,
        communicator: str | None = None,
        conda_dependencies: Any = None,
        _history_enabled: bool | None = None,
        _path: str | None = None,
        _name: str | None = None,
        command: list[Any] | str | None = None,
    ) -> None:
        self.script = script
        self.arguments: list[Any] = list(arguments or [])
        self.command = command
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.node_count = 1
        self.max_run_duration_seconds: int | None = None
        self.environment: Any = Environment(DEFAULT_ENVIRONMENT_NAME)
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.docker = DockerConfiguration()
        self.data: dict[str, Any] = {}
        self.output_data: dict[str, Any] = {}
        self.data_references: dict[str, Any] = {}
        self.credential_passthrough = False
        self._target: Any = "local"
        self._environment_variables: dict[str, str] = {}
        self._name = _name

    @property
    def target(self) -> Any:
        """The compute target: 'local', another target's name, or a compute target object."""
        return self._target

    @target.setter
    def target(self, value: Any) -> None:
        self._target = value if value is not None else "local"

    @property
    def environment_variables(self) -> dict[str, str]:
        """Variables set in the job's process (v1's supported place for them)."""
        return self._environment_variables

    @environment_variables.setter
    def environment_variables(self, value: dict[str, str]) -> None:
        self._environment_variables = dict(value or {})

    @property
    def auto_prepare_environment(self) -> bool:
        """Dead in v1 too; kept so code that reads it keeps running."""
        return True

    @auto_prepare_environment.setter
    def auto_prepare_environment(self, value: bool) -> None:
        pass

    @property
    def target_name(self) -> str:
        return str(getattr(self._target, "name", self._target))

    def warn_ignored_settings(self, where: str = "RunConfiguration") -> None:
        """The one-time warnings for settings that were changed after construction and do nothing here."""
        self.docker.warn_if_docker(where)
        if int(self.node_count or 1) > 1:
            warn_ignored(where, "node_count", _ONE_NODE)

    # -- save / load: a JSON file under <path>/.azureml/<name>.runconfig -----------------------
    def _to_dict(self) -> dict[str, Any]:
        env = self.environment
        return {
            "script": self.script,
            "arguments": [str(a) for a in self.arguments],
            "command": self.command,
            "target": self.target_name,
            "framework": self.framework,
            "communicator": self.communicator,
            "nodeCount": self.node_count,
            "maxRunDurationSeconds": self.max_run_duration_seconds,
            "environment": env.to_definition() if isinstance(env, Environment) else env,
            "environmentVariables": dict(self._environment_variables),
            "docker": self.docker._to_dict(),
        }

    @staticmethod
    def _file(path: str | os.PathLike[str] | None, name: str | None) -> Path:
        folder = Path(path or ".").expanduser()
        if folder.suffix == _SUFFIX:
            return folder
        if folder.name != _RUNCONFIG_DIR and folder.name != "aml_config":
            folder = folder / _RUNCONFIG_DIR
        return folder / f"{name or 'default'}{_SUFFIX}"

    def save(
        self,
        path: str | os.PathLike[str] | None = None,
        name: str | None = None,
        separate_environment_yaml: bool = False,
    ) -> None:
        """Write `<path>/.azureml/<name>.runconfig` (JSON; `load` reads it back), the whole environment
        definition included; `separate_environment_yaml` has nothing to separate in that form."""
        target = self._file(path, name or self._name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(self._to_dict(), indent=2) + "\n")
        os.replace(tmp, target)

    @staticmethod
    def load(path: str | os.PathLike[str], name: str | None = None) -> RunConfiguration:
        """Read a run configuration written by `save` (from `<path>/.azureml/<name>.runconfig`)."""
        source = RunConfiguration._file(path, name)
        if not source.is_file():
            raise NotFoundError(
                f"No run configuration at {source}. Write one with run_config.save(path, name), or pass the "
                "folder that holds .azureml/<name>.runconfig."
            )
        try:
            raw = json.loads(source.read_text())
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{source} is not a run configuration runyard wrote (it reads the JSON form save() writes; "
                f"{exc}). Recreate it with RunConfiguration(...).save()."
            ) from exc
        cfg = RunConfiguration(
            script=raw.get("script"), arguments=raw.get("arguments"), command=raw.get("command"), _name=name
        )
        cfg.framework = raw.get("framework") or "Python"
        cfg.communicator = raw.get("communicator") or "None"
        cfg.target = raw.get("target") or "local"
        cfg.node_count = int(raw.get("nodeCount") or 1)
        cfg.max_run_duration_seconds = raw.get("maxRunDurationSeconds")
        environment = raw.get("environment")
        cfg.environment = (
            Environment.from_definition(environment) if isinstance(environment, dict) else environment
        )
        cfg.environment_variables = raw.get("environmentVariables") or {}
        docker = raw.get("docker") or {}
        cfg.docker = DockerConfiguration(
            use_docker=bool(docker.get("useDocker", False)),
            shared_volumes=bool(docker.get("sharedVolumes", True)),
            arguments=list(docker.get("arguments") or []),
            shm_size=str(docker.get("shmSize", "2g")),
        )
        return cfg

    @staticmethod
    def delete(path: str | os.PathLike[str], name: str) -> None:
        """Remove a saved run configuration."""
        source = RunConfiguration._file(path, name)
        if not source.is_file():
            raise NotFoundError(f"No run configuration at {source} to delete.")
        source.unlink()

    def __repr__(self) -> str:
        return f"RunConfiguration(script={self.script!r}, target={self.target_name!r})"

"""Environment and EnvironmentReference: v1's API for what a job runs with (docs/environments.md).

An Environment is a name, a version once registered, and v1's JSON sections (definition.py). Registering
stores the JSON as the next version in the workspace's store (an identical definition keeps its version);
getting a name looks in the store first and then in the curated table (curated.py). Building makes the
virtual environment now (plan.py + build.py), the same one a run would use.

The workspace is taken duck-typed (`ws.store`, `ws.artifacts`), like runyard/data/: environments/ sits
below core and imports nothing from it.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runyard.compat import check_keywords, v1_ignores, v1_keywords
from runyard.environments.conda import PYTHON_DEFAULT_VERSION, CondaDependencies
from runyard.environments.curated import CURATED, curated, curated_definition, describe_table, is_reserved
from runyard.environments.definition import (
    DEFAULT_ENVIRONMENT_NAME,
    DockerSection,
    PythonSection,
    SparkSection,
    default_databricks,
    read_requirements,
)
from runyard.environments.local_build import LocalBuild, build_now, export_conda_environment, image_details
from runyard.errors import EnvironmentDefinitionError, EnvironmentNotFound, InvalidInputError

DEFINITION_FILE = "azureml_environment.json"
CONDA_FILE = "conda_dependencies.yml"
DOCKERFILE_FILE = "BaseDockerfile"
PRIVATE_WHEELS = "environments/private-wheels"
_NO_COMPUTE = "the environment is built on this machine, where the jobs run"
_NO_LABELS = (
    "environment labels are not supported in runyard; get a version with Environment.get(ws, name, "
    "version='2'), or register under a name per stage (e.g. 'train-env-prod')"
)


@v1_keywords
class Environment:
    """The Python a job runs with, its packages and variables (v1's Environment)."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        check_keywords("Environment", {k: v for k, v in kwargs.items() if not k.startswith("_")}, [])
        if not isinstance(name, str):
            raise TypeError(f"Environment name expected str, {type(name).__name__} found")
        skip = bool(kwargs.get("_skip_defaults"))
        self.name = name
        self.version: str | None = None
        self.python = PythonSection(_skip_defaults=skip)
        self.docker = DockerSection(_skip_defaults=skip)
        self.spark = SparkSection()
        self.databricks: dict[str, Any] = default_databricks()
        self.r: Any = None
        self.inferencing_stack_version: str | None = None
        self.asset_id: str | None = None
        self._environment_variables: dict[str, str] = {} if skip else {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}
        self._runyard: dict[str, Any] = {"curated": None, "source": None}

    @property
    def environment_variables(self) -> dict[str, str]:
        """Variables set in the job's process (v1 deprecated them in favour of
        RunConfiguration.environment_variables; runyard honours both)."""
        return self._environment_variables

    @environment_variables.setter
    def environment_variables(self, value: dict[str, str]) -> None:
        self._environment_variables = {str(k): str(v) for k, v in dict(value or {}).items()}

    # -- the JSON ---------------------------------------------------------------------------------
    def to_definition(self) -> dict[str, Any]:
        """v1's environment JSON (`Environment._serialize_to_dict`), plus runyard's own `runyard` key."""
        definition: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "environmentVariables": dict(self._environment_variables),
            "python": self.python._to_dict(),
            "docker": self.docker._to_dict(),
            "spark": self.spark._to_dict(),
            "databricks": copy.deepcopy(self.databricks),
            "r": copy.deepcopy(self.r),
            "inferencingStackVersion": self.inferencing_stack_version,
            "assetId": self.asset_id,
        }
        if any(self._runyard.values()):
            definition["runyard"] = dict(self._runyard)
        return definition

    @staticmethod
    def from_definition(definition: Mapping[str, Any]) -> Environment:
        """An Environment from v1's JSON (what to_definition, the store and run records hold)."""
        if not isinstance(definition, Mapping) or not isinstance(definition.get("name"), str):
            raise EnvironmentDefinitionError(
                "An environment definition is a mapping with at least a 'name' (v1's environment JSON)."
            )
        env = Environment(definition["name"], _skip_defaults=True)
        version = definition.get("version")
        env.version = None if version is None else str(version)
        env.python = PythonSection._from_dict(definition.get("python") or {})
        env.docker = DockerSection._from_dict(definition.get("docker") or {})
        env.spark = SparkSection._from_dict(definition.get("spark") or {})
        env.databricks = copy.deepcopy(definition.get("databricks") or default_databricks())
        env.r = copy.deepcopy(definition.get("r"))
        env.inferencing_stack_version = definition.get("inferencingStackVersion")
        env.asset_id = definition.get("assetId")
        env._environment_variables = {
            str(k): str(v) for k, v in (definition.get("environmentVariables") or {}).items()
        }
        extra = definition.get("runyard") or {}
        env._runyard = {"curated": extra.get("curated"), "source": extra.get("source")}
        return env

    # -- construction ---------------------------------------------------------------------------
    @staticmethod
    def from_pip_requirements(
        name: str, file_path: str | os.PathLike[str], pip_version: str | None = None
    ) -> Environment:
        """Read a requirements file now (v1 does): `-r other.txt` is followed relative to the file,
        comments and blank lines are dropped, a line that is not a requirement is an error naming it."""
        env = Environment(name)
        cd = env.python.conda_dependencies
        assert cd is not None
        cd.set_pip_requirements(read_requirements(file_path))
        cd.add_conda_package(f"pip={pip_version}" if pip_version else "pip")
        env._runyard["source"] = os.fspath(file_path)
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str | os.PathLike[str]) -> Environment:
        """An environment from a conda YAML file; without a `python=` entry, v1's default is pinned."""
        cd = CondaDependencies(conda_dependencies_file_path=file_path)
        if cd.get_python_version() is None:
            cd.set_python_version(PYTHON_DEFAULT_VERSION)
        env = Environment(name)
        env.python.conda_dependencies = cd
        env._runyard["source"] = os.fspath(file_path)
        return env

    @staticmethod
    def from_existing_conda_environment(name: str, conda_environment_name: str) -> Environment | None:
        """Export a local conda environment (`conda env export`) and read it; None when the export fails
        (v1). Without conda on PATH this is an error that says what to do instead."""
        exported = export_conda_environment(conda_environment_name)
        if exported is None:
            return None
        with tempfile.TemporaryDirectory() as folder:
            spec = Path(folder) / "environment.yml"
            spec.write_bytes(exported)
            env = Environment.from_conda_specification(name, spec)
        env._runyard["source"] = f"conda env {conda_environment_name}"
        return env

    @staticmethod
    def _from_dependencies(name: str, conda_specification: Any, pip_requirements: Any) -> Environment:
        if conda_specification and pip_requirements:
            raise InvalidInputError("Give conda_specification or pip_requirements, not both.")
        if conda_specification:
            return Environment.from_conda_specification(name, conda_specification)
        if pip_requirements:
            return Environment.from_pip_requirements(name, pip_requirements)
        env = Environment(name)
        env.python.user_managed_dependencies = True
        return env

    @staticmethod
    def from_docker_image(
        name: str,
        image: str,
        container_registry: Any = None,
        conda_specification: str | None = None,
        pip_requirements: str | None = None,
    ) -> Environment:
        """The image is recorded, not pulled; the Python packages (if given) are built as usual."""
        env = Environment._from_dependencies(name, conda_specification, pip_requirements)
        env.docker.base_image = image
        if container_registry is not None:
            env.docker.base_image_registry = _registry_dict(container_registry)
        return env

    @staticmethod
    def from_dockerfile(
        name: str,
        dockerfile: str,
        conda_specification: str | None = None,
        pip_requirements: str | None = None,
    ) -> Environment:
        """The Dockerfile (a path or its text) is recorded, not built."""
        env = Environment._from_dependencies(name, conda_specification, pip_requirements)
        text = Path(dockerfile).read_text() if os.path.isfile(dockerfile) else dockerfile
        env.docker.base_dockerfile = text
        env.docker._values["base_image"] = None
        return env

    @staticmethod
    def from_docker_build_context(name: str, docker_build_context: Any) -> Environment:
        """The build context is recorded, not built; the job runs with the submitting interpreter."""
        env = Environment(name, _skip_defaults=True)
        env.python.user_managed_dependencies = True
        env.docker.build_context = docker_build_context
        return env

    # -- registry ---------------------------------------------------------------------------------
    def register(self, workspace: Any) -> Environment:
        """Store this definition as the next version of its name (an unchanged definition keeps its
        version, as in v1). Names starting with AzureML or Microsoft are reserved for curated ones."""
        if is_reserved(self.name):
            raise InvalidInputError(
                f"Environment name {self.name!r} is reserved: names starting with 'AzureML' or 'Microsoft' "
                "belong to curated environments. Register a copy under your own name: "
                "env.clone('my-env').register(ws)."
            )
        definition = self.to_definition()
        definition["version"] = None
        record = workspace.store.register_environment(self.name, definition)
        return _from_record(record)

    @staticmethod
    def label(workspace: Any, name: str, version: str, labels: list[str]) -> None:
        """Not supported: raises with what to do instead."""
        raise InvalidInputError(_NO_LABELS)

    @staticmethod
    def get(workspace: Any, name: str, version: str | None = None, label: str | None = None) -> Environment:
        """A registered environment (latest version unless `version`), else a curated one by name."""
        if label is not None:
            raise InvalidInputError(_NO_LABELS)
        number = _version_number(name, version)
        try:
            return _from_record(workspace.store.get_environment(name, number))
        except EnvironmentNotFound:
            if curated(name) is not None and number in (None, 1):
                return curated_environment(name)
            if number is not None and workspace.store.list_environments(name):
                raise  # a registered name without that version: the store's message lists its versions
        known = sorted(r.name for r in workspace.store.list_environments())
        wanted = f"{name!r} version {version}" if version is not None else repr(name)
        raise EnvironmentNotFound(
            f"No environment {wanted}. Registered: {', '.join(known) or 'none'}. Register one with "
            f"Environment(name).register(ws), or use a curated environment:\n{describe_table()}"
        )

    @staticmethod
    def list(workspace: Any) -> dict[str, Environment]:
        """Every curated environment and the latest version of every registered one, by name."""
        found: dict[str, Environment] = {name: curated_environment(name) for name in CURATED}
        for record in workspace.store.list_environments():
            found[record.name] = _from_record(record)
        return found

    def clone(self, new_name: str) -> Environment:
        """A copy under a new name, unregistered (version None)."""
        if not new_name:
            raise InvalidInputError("clone() needs a new name for the copy.")
        env = Environment.from_definition(self.to_definition())
        env.name, env.version, env.asset_id = new_name, None, None
        env._runyard["curated"] = None
        return env

    # -- files --------------------------------------------------------------------------------------
    def save_to_directory(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        """Write azureml_environment.json and conda_dependencies.yml (and BaseDockerfile) as v1 does."""
        folder = Path(path)
        if folder.exists() and not overwrite:
            raise InvalidInputError(f"{folder} exists; pass overwrite=True to write into it.")
        folder.mkdir(parents=True, exist_ok=True)
        definition = self.to_definition()
        if self.python.conda_dependencies is not None:
            self.python.conda_dependencies.save_to_file(folder, CONDA_FILE)
            definition["python"].pop("condaDependencies", None)
        if self.docker.base_dockerfile:
            (folder / DOCKERFILE_FILE).write_text(self.docker.base_dockerfile)
            definition["docker"].pop("baseDockerfile", None)
        (folder / DEFINITION_FILE).write_text(json.dumps(definition, indent=4) + "\n")

    @staticmethod
    def load_from_directory(path: str | os.PathLike[str]) -> Environment:
        """Read what save_to_directory wrote."""
        folder = Path(path)
        source = folder / DEFINITION_FILE
        if not source.is_file():
            raise InvalidInputError(
                f"No {DEFINITION_FILE} in {folder}; write one with env.save_to_directory(path)."
            )
        try:
            definition = json.loads(source.read_text())
        except json.JSONDecodeError as exc:
            raise EnvironmentDefinitionError(
                f"{source} line {exc.lineno}: not valid JSON ({exc.msg})."
            ) from exc
        env = Environment.from_definition(definition)
        if (folder / CONDA_FILE).is_file():
            env.python.conda_dependencies = CondaDependencies(folder / CONDA_FILE)
        if (folder / DOCKERFILE_FILE).is_file():
            env.docker._values["base_dockerfile"] = (folder / DOCKERFILE_FILE).read_text()
        return env

    # -- building -------------------------------------------------------------------------------------
    @v1_ignores(image_build_compute=_NO_COMPUTE)
    def build(self, workspace: Any, image_build_compute: str | None = None) -> LocalBuild:
        """Register (as v1 does) and build the virtual environment now."""
        return self.register(workspace).build_local(workspace)

    def build_local(self, workspace: Any, platform: str | None = None, **kwargs: Any) -> LocalBuild:
        """Build the virtual environment now, on this machine (no registration needed). `platform` and
        v1's docker keywords (useDocker, pushImageToWorkspaceAcr) have nothing to choose here."""
        check_keywords("Environment.build_local", kwargs, ["useDocker", "pushImageToWorkspaceAcr"])
        return build_now(self.to_definition())

    def get_image_details(self, workspace: Any) -> dict[str, Any]:
        """What a build of this environment is (v1 describes a Docker image): its hash, folder and
        interpreter (empty when not built yet), Python and requirements (local_build.image_details)."""
        return image_details(self.to_definition())

    @staticmethod
    def add_private_pip_wheel(
        workspace: Any, file_path: str | os.PathLike[str], exist_ok: bool = False
    ) -> str:
        """Store a wheel in the workspace's artifacts; returns its local path, which a pip requirement
        (add_pip_package) can name. The same file name twice needs exist_ok=True (v1)."""
        source = Path(file_path)
        if not source.is_file() or source.suffix != ".whl":
            raise InvalidInputError(f"No wheel file at {source}; pass the path of a built .whl file.")
        rel = f"{PRIVATE_WHEELS}/{source.name}"
        artifacts = workspace.artifacts
        if artifacts.exists(rel):
            if not exist_ok:
                raise InvalidInputError(
                    f"A wheel named {source.name} is already stored in this workspace; pass exist_ok=True to "
                    "use the stored one, or rename the wheel (bump its version)."
                )
        else:
            artifacts.put_file(rel, source)
        return str(artifacts.fetch(rel))

    def __str__(self) -> str:
        return f"Environment(Name: {self.name},\nVersion: {self.version})"

    def __repr__(self) -> str:
        return json.dumps(self.to_definition(), indent=4, sort_keys=True)


@v1_keywords
class EnvironmentReference:
    """A registered environment by name (and version): resolved when needed."""

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version

    def get_environment(self, workspace: Any) -> Environment:
        return Environment.get(workspace, self.name, self.version)

    def __repr__(self) -> str:
        return f"EnvironmentReference(name={self.name!r}, version={self.version!r})"


def curated_environment(name: str) -> Environment:
    """The local equivalent of a curated environment (curated.py); EnvironmentNotFound lists the table."""
    return Environment.from_definition(curated_definition(name))


def run_environment(
    run_definition: Mapping[str, Any] | None, step_spec: Mapping[str, Any] | None
) -> Environment:
    """The Environment a run used, rebuilt from its record: a script run's
    runDefinition.environmentDefinition or a step's graph spec environment.definition. None there means
    the run used the submitting interpreter as is: a 'default-environment' with user-managed
    dependencies and that interpreter (as recorded, else this process's)."""
    definition = (run_definition or {}).get("environmentDefinition")
    if definition is None and step_spec is not None:
        definition = (step_spec.get("environment") or {}).get("definition")
    if definition:
        return Environment.from_definition(definition)
    env = Environment(DEFAULT_ENVIRONMENT_NAME)
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = str((run_definition or {}).get("interpreter") or sys.executable)
    return env


def _from_record(record: Any) -> Environment:
    env = Environment.from_definition({**record.definition, "name": record.name})
    env.version = str(record.version)
    return env


def _version_number(name: str, version: Any) -> int | None:
    if version is None:
        return None
    try:
        number = int(str(version))
    except ValueError:
        raise EnvironmentNotFound(
            f"Environment {name!r} has no version {version!r}: versions are numbers ('1', '2', ...)."
        ) from None
    return number


def _registry_dict(registry: Any) -> dict[str, Any]:
    if isinstance(registry, Mapping):
        return dict(registry)
    return {k: getattr(registry, k, None) for k in ("address", "username", "password", "registryIdentity")}

"""v1's environment JSON (contract §1) and the Python/Docker sections it is made of.

Why here: the JSON is the one typed thing that crosses boundaries (run records, graphs, the store), so the
code that writes and reads it sits in one module. `environment_definition(env)` is what callers use: it
turns whatever a user passed as `environment=` into that JSON, or None for "run with the submitting
interpreter as is" (an unset environment, a name not looked up, or RunConfiguration's untouched default).

Also here, because they are small and shared: read_requirements (a pip requirements file, read now, a bad
line named), and what plan.py reads of a definition (conda_dependencies_of, requirement_origin). LocalBuild
(what Environment.build_local returns) is in local_build.py.

Docker settings are recorded and warned about once each (runyard.compat.warn_ignored): every job here is a
local process. Reading a definition back never warns.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runyard.compat import same_value, user_stacklevel, v1_keywords, warn_ignored
from runyard.environments.conda import CondaDependencies
from runyard.errors import EnvironmentDefinitionError

#: v1's default base images (azureml-core 1.61); recorded for code that prints or passes them.
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04"
#: The name RunConfiguration gives the environment nobody set (v1).
DEFAULT_ENVIRONMENT_NAME = "default-environment"
NO_DOCKER = "runyard runs every job as a local process"
_DEFAULT_SHM = "2g"


@v1_keywords
class PythonSection:
    """Which Python a job runs with: a built environment from `conda_dependencies` (the default), or with
    `user_managed_dependencies=True` the interpreter at `interpreter_path` as it is."""

    def __init__(self, **kwargs: Any) -> None:
        self.user_managed_dependencies = False
        self.interpreter_path = "python"
        self.conda_dependencies: CondaDependencies | None = (
            None if kwargs.get("_skip_defaults") else CondaDependencies()
        )
        self._conda_dependencies_file: str | None = None
        self.base_conda_environment: str | None = None

    @property
    def conda_dependencies_file(self) -> str | None:
        """Deprecated in v1 (use Environment.from_conda_specification); recorded as given."""
        return self._conda_dependencies_file

    @conda_dependencies_file.setter
    def conda_dependencies_file(self, value: str | None) -> None:
        self._conda_dependencies_file = value or None

    def _to_dict(self) -> dict[str, Any]:
        cd = self.conda_dependencies
        return {
            "userManagedDependencies": bool(self.user_managed_dependencies),
            "interpreterPath": self.interpreter_path,
            "condaDependenciesFile": self._conda_dependencies_file,
            "baseCondaEnvironment": self.base_conda_environment,
            "condaDependencies": None if cd is None else cd.as_dict(),
        }

    @staticmethod
    def _from_dict(raw: Mapping[str, Any]) -> PythonSection:
        section = PythonSection(_skip_defaults=True)
        section.user_managed_dependencies = bool(raw.get("userManagedDependencies", False))
        section.interpreter_path = str(raw.get("interpreterPath") or "python")
        section._conda_dependencies_file = raw.get("condaDependenciesFile")
        section.base_conda_environment = raw.get("baseCondaEnvironment")
        spec = raw.get("condaDependencies")
        if spec is not None:
            section.conda_dependencies = CondaDependencies(_underlying_structure=copy.deepcopy(dict(spec)))
        return section


def _docker_property(attr: str, doc: str) -> property:
    def get(self: DockerSection) -> Any:
        return self._values[attr]

    def set_(self: DockerSection, value: Any) -> None:
        # setting what v1 has anyway (`docker.enabled = False`) changes nothing worth a warning
        if not same_value(value, DockerSection._FIELDS[attr][1]):
            # the user's `env.docker.<attr> = ...` line (or their from_docker_image call)
            warn_ignored("Environment.docker", attr, NO_DOCKER, stacklevel=user_stacklevel())
        self._values[attr] = value

    return property(get, set_, doc=doc)


@v1_keywords
class DockerSection:
    """v1's Docker settings of an environment: kept (they travel with the definition) and ignored, with a
    one-time warning per setting, because runyard runs every job as a local process."""

    _FIELDS = {
        "enabled": ("enabled", False),
        "base_image": ("baseImage", DEFAULT_CPU_IMAGE),
        "base_dockerfile": ("baseDockerfile", None),
        "build_context": ("buildContext", None),
        "shared_volumes": ("sharedVolumes", True),
        "shm_size": ("shmSize", _DEFAULT_SHM),
        "arguments": ("arguments", []),
    }

    def __init__(self, **kwargs: Any) -> None:
        skip = bool(kwargs.get("_skip_defaults"))
        self._values: dict[str, Any] = {
            attr: (None if skip and attr in ("base_image", "shm_size") else copy.copy(default))
            for attr, (_, default) in self._FIELDS.items()
        }
        self.base_image_registry: dict[str, Any] = {
            "address": None,
            "username": None,
            "password": None,
            "registryIdentity": None,
        }
        self.platform: dict[str, Any] = {"os": "Linux", "architecture": "amd64"}

    enabled = _docker_property("enabled", "Recorded; every job runs as a local process.")
    base_image = _docker_property("base_image", "Recorded; no image is pulled.")
    base_dockerfile = _docker_property("base_dockerfile", "Recorded; no Dockerfile is built.")
    build_context = _docker_property("build_context", "Recorded; no Docker build runs.")
    shared_volumes = _docker_property("shared_volumes", "Recorded; no container is started.")
    shm_size = _docker_property("shm_size", "Recorded; no container is started.")
    arguments = _docker_property("arguments", "Recorded; no container is started.")

    @property
    def gpu_support(self) -> bool:
        """Deprecated in v1, always True there; a local job sees the machine's GPUs as they are."""
        return True

    @gpu_support.setter
    def gpu_support(self, value: bool) -> None:
        pass

    def _to_dict(self) -> dict[str, Any]:
        out = {key: _json_safe(self._values[attr]) for attr, (key, _) in self._FIELDS.items()}
        out["baseImageRegistry"] = _json_safe(self.base_image_registry)
        out["platform"] = _json_safe(self.platform)
        return out

    @staticmethod
    def _from_dict(raw: Mapping[str, Any]) -> DockerSection:
        section = DockerSection(_skip_defaults=True)
        for attr, (key, default) in DockerSection._FIELDS.items():
            section._values[attr] = copy.deepcopy(raw.get(key, default))
        section.base_image_registry = dict(raw.get("baseImageRegistry") or section.base_image_registry)
        section.platform = dict(raw.get("platform") or section.platform)
        return section


def _json_safe(value: Any) -> Any:
    """Docker values v1 allows as objects (a ContainerRegistry, a DockerBuildContext) kept as JSON."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    fields = (
        {k: v for k, v in vars(value).items() if not k.startswith("_")} if hasattr(value, "__dict__") else {}
    )
    return _json_safe(fields) if fields else str(value)


def default_spark() -> dict[str, Any]:
    return {"repositories": [], "packages": [], "precachePackages": True}


@v1_keywords
class SparkSection:
    """v1's Spark settings of an environment (`env.spark.precache_packages = False` is in Microsoft's
    samples): kept with the definition, where Spark packages enter its hash as in v1; runyard starts no
    Spark, so a job that needs them lists pyspark and its jars itself."""

    def __init__(self, **kwargs: Any) -> None:
        defaults = default_spark()
        self.repositories: list[str] = defaults["repositories"]
        self.packages: list[Any] = defaults["packages"]  # v1's SparkPackage(group, artifact, version)
        self.precache_packages: bool = defaults["precachePackages"]

    def _to_dict(self) -> dict[str, Any]:
        return {
            "repositories": _json_safe(list(self.repositories or [])),
            "packages": _json_safe(list(self.packages or [])),
            "precachePackages": bool(self.precache_packages),
        }

    @staticmethod
    def _from_dict(raw: Mapping[str, Any]) -> SparkSection:
        section = SparkSection()
        section.repositories = copy.deepcopy(list(raw.get("repositories") or []))
        section.packages = copy.deepcopy(list(raw.get("packages") or []))
        section.precache_packages = bool(raw.get("precachePackages", True))
        return section


def default_databricks() -> dict[str, Any]:
    return {
        "mavenLibraries": [],
        "pypiLibraries": [],
        "rcranLibraries": [],
        "jarLibraries": [],
        "eggLibraries": [],
    }


def _comparable(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a definition that change what a job runs with (docker and the name do not)."""
    return {k: v for k, v in definition.items() if k not in ("name", "version", "docker", "assetId")}


_UNTOUCHED: dict[str, Any] | None = None


def _untouched_default() -> dict[str, Any]:
    global _UNTOUCHED
    if _UNTOUCHED is None:
        from runyard.environments.environment import Environment

        _UNTOUCHED = _comparable(Environment(DEFAULT_ENVIRONMENT_NAME).to_definition())
    return _UNTOUCHED


def environment_definition(env: Any) -> dict[str, Any] | None:
    """The environment JSON for what a user passed as `environment=`.

    An Environment -> its JSON; a dict -> itself (checked lightly); None, a str (a name: callers that
    accept registered names look them up with Environment.get first) or RunConfiguration's untouched
    default environment -> None, meaning "run with the submitting interpreter as is" (runyard's
    local-first default; a docker-only change to the default still means that).
    """
    if env is None or isinstance(env, str):
        return None
    if isinstance(env, Mapping):
        definition = dict(env)
        python = definition.get("python")
        if python is not None and not isinstance(python, Mapping):
            raise EnvironmentDefinitionError(
                f"An environment definition's 'python' must be a mapping, not {type(python).__name__}."
            )
        return definition
    to_definition = getattr(env, "to_definition", None)
    if not callable(to_definition):
        raise EnvironmentDefinitionError(
            f"environment= takes an Environment, a registered environment's name or None, not "
            f"{type(env).__name__}. Build one with Environment('name') or Environment.get(ws, 'name')."
        )
    definition = to_definition()
    untouched = definition.get("name") == DEFAULT_ENVIRONMENT_NAME and definition.get("version") is None
    if untouched and _comparable(definition) == _untouched_default():
        return None
    return dict(definition)


def definition_display_name(defn: Mapping[str, Any] | None) -> str:
    """How logs and pages name an environment: 'train-env:3', 'train-env', 'AzureML-Minimal (curated)',
    or 'the submitting interpreter' for None."""
    if defn is None:
        return "the submitting interpreter"
    name = str(defn.get("name") or "unnamed environment")
    version = defn.get("version")
    curated = (defn.get("runyard") or {}).get("curated")
    if curated:
        return f"{name} (curated)"
    return f"{name}:{version}" if version not in (None, "") else name


# -- pip requirements files ---------------------------------------------------------------------------
_PATHLIKE = ("./", "../", "/", "~")
_COMMENT = re.compile(r"(^|\s)#.*$")
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s*=\s*|\s+|(?=[^\s-]))(\S.*)$")


def read_requirements(file_path: str | os.PathLike[str], _seen: frozenset[Path] = frozenset()) -> list[str]:
    """The requirement lines of a pip requirements file, read now: `-r other.txt` is followed relative to
    the file, comments and blank lines dropped, options (--extra-index-url ...) and paths/URLs kept as
    written. A line that is not a requirement is an EnvironmentDefinitionError naming file and line."""
    from packaging.requirements import InvalidRequirement, Requirement  # deferred: only files need it

    path = Path(file_path)
    shown = os.fspath(file_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise EnvironmentDefinitionError(
            f"Cannot read the pip requirements file {shown}: {exc.strerror or exc}. Pass the path of an "
            "existing requirements.txt."
        ) from exc
    if path.resolve() in _seen:
        raise EnvironmentDefinitionError(f"{shown} includes itself through -r; remove the loop.")
    found: list[str] = []
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = (pending + _COMMENT.sub("", raw)).strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line:
            continue
        include = _INCLUDE.match(line)
        if include:
            found.extend(read_requirements(path.parent / include.group(1).strip(), _seen | {path.resolve()}))
            continue
        if (
            line.startswith("-")
            or "://" in line
            or line.startswith(_PATHLIKE)
            or line.endswith((".whl", ".tar.gz", ".zip"))
        ):
            found.append(line)
            continue
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise EnvironmentDefinitionError(
                f"{shown} line {number}: {line!r} is not a pip requirement ({exc}). Write it as "
                "'name', 'name==1.2' or 'name>=1.2,<2' (PEP 508), or remove the line."
            ) from None
        found.append(line)
    return found


# -- reading a definition for a plan (plan.py) ---------------------------------------------------------
def requirement_origin(definition: Mapping[str, Any], line: str, where: str | int) -> str:
    """Where a bad pip line came from (asked only for an error): the requirements file's line number when
    the definition names its file and that is a small regular file, else the file or the pip list item."""
    from runyard.environments.conda_map import read_definition_file

    if isinstance(where, str):
        return where
    source = (definition.get("runyard") or {}).get("source") if isinstance(definition, Mapping) else None
    if isinstance(source, str) and source:
        try:
            for number, text in enumerate(read_definition_file(source).splitlines(), start=1):
                if text.strip() == line.strip():
                    return f"{source}, line {number}"
        except (OSError, ValueError):
            pass
        return repr(source)
    return f"pip list item {where + 1}"


def conda_dependencies_of(name: str, python_section: Mapping[str, Any]) -> Mapping[str, Any]:
    """A python section's conda dependencies: `condaDependencies`, else the condaDependenciesFile it names
    (read only as a small regular file, conda_map.read_definition_file)."""
    conda = python_section.get("condaDependencies")
    if conda:
        return conda
    path = python_section.get("condaDependenciesFile")
    if not path:
        return {}
    import yaml  # only for this rare form: v1 keeps the file's content in condaDependencies

    from runyard.environments.conda_map import read_definition_file

    try:
        loaded = yaml.safe_load(read_definition_file(str(path)))
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: NUL in the path, too big, not UTF-8
        raise EnvironmentDefinitionError(
            f"Environment {name!r}: cannot read condaDependenciesFile {str(path)!r:.200} ({exc}); runyard "
            "reads only a regular file of at most 256 KB there. Load it with "
            "CondaDependencies(conda_dependencies_file_path=...) so its content travels with the environment."
        ) from exc
    return loaded if isinstance(loaded, Mapping) else {}

"""CondaDependencies: v1's conda specification object, kept as the same plain dict v1 keeps.

Why a dict and not a model: the dict *is* what crosses boundaries (`python.condaDependencies` in the
environment JSON, contract §1), so every method edits it in place and `as_dict()` hands it out unchanged.
runyard never runs conda: plan.py turns this spec into pip requirements and says so in the build log.

A conda file is read with PyYAML; a file that does not parse, or parses into something that is not a conda
environment spec, is an EnvironmentDefinitionError naming the file and the line. PyYAML and packaging are
imported inside the functions that need them, so `import runyard` in a job never pays for them.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runyard.compat import v1_keywords
from runyard.errors import EnvironmentDefinitionError

#: v1's defaults (azureml-core 1.61): CondaDependencies() pins python=3.8.13, create() pins 3.10.18.
PYTHON_DEFAULT_VERSION = "3.10.18"
BASE_PYTHON_VERSION = "3.8.13"
DEFAULT_SDK_ORIGIN = "https://pypi.python.org/simple"
CONDA_FILE_NAME = "auto_conda_dependencies.yml"
TENSORFLOW_DEFAULT_VERSION = "2.2.0"
CNTK_DEFAULT_VERSION = "2.7"
LINUX_PLATFORM = "linux"
WINDOWS_PLATFORM = "win32"

_DEPENDENCIES, _CHANNELS, _PIP = "dependencies", "channels", "pip"
_VALID_KEYS = ("name", "channels", "dependencies", "prefix", "variables")
_NAME_SPLIT = re.compile(r"[\[=<>~!; ]")
_VERSION = re.compile(r"(\d+)\.(\d+)(\.(\d+))?([ab](\d+))?$")
_HEADER = (
    "# Conda environment specification. runyard turns it into pip requirements (docs/environments.md).\n"
)


def default_spec() -> dict[str, Any]:
    """What v1's CondaDependencies() starts from: Python 3.8.13, azureml-defaults, two channels."""
    return {
        "name": "project_environment",
        _DEPENDENCIES: [f"python={BASE_PYTHON_VERSION}", {_PIP: ["azureml-defaults"]}],
        _CHANNELS: ["anaconda", "conda-forge"],
    }


def package_name(requirement: str) -> str:
    """The distribution name of a pip or conda requirement ('scikit-learn' of 'scikit-learn>=1.0'); a wheel
    file or URL is named by its file name's first part, as in PEP 427."""
    if requirement.endswith(".whl"):
        return requirement.rsplit("/", 1)[-1].split("-", 1)[0]
    return _NAME_SPLIT.split(requirement.strip(), 1)[0]


def _is_option(item: str) -> bool:
    return item.startswith("-")


def _where(path: str, mark: Any) -> str:
    return f"{path} line {mark.line + 1}" if mark is not None else path


def load_conda_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a conda environment YAML file; EnvironmentDefinitionError names the file and line."""
    import yaml  # deferred: only reading a conda file needs it

    shown = os.fspath(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise EnvironmentDefinitionError(
            f"Cannot read the conda specification {shown}: {exc.strerror or exc}. Pass the path of an "
            "existing environment .yml file (for example one written by `conda env export`)."
        ) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise EnvironmentDefinitionError(
            f"{_where(shown, mark)}: not valid YAML ({problem}). Fix the file; a conda specification is a "
            "mapping with 'name', 'channels' and 'dependencies'."
        ) from exc
    if not isinstance(spec, dict) or not isinstance(node, yaml.MappingNode):
        raise EnvironmentDefinitionError(
            f"{shown} is not a conda environment specification: it must be a YAML mapping with 'name', "
            "'channels' and 'dependencies' (got "
            f"{type(spec).__name__})."
        )
    for key_node, value_node in node.value:
        key = key_node.value
        if key not in _VALID_KEYS:
            raise EnvironmentDefinitionError(
                f"{_where(shown, key_node.start_mark)}: unknown key {key!r} in a conda specification; the "
                f"keys v1 accepts are {', '.join(_VALID_KEYS)}."
            )
        if key == _DEPENDENCIES:
            _check_dependencies(shown, value_node)
    return spec


def _check_dependencies(shown: str, node: Any) -> None:
    import yaml

    if not isinstance(node, yaml.SequenceNode):
        raise EnvironmentDefinitionError(
            f"{_where(shown, node.start_mark)}: 'dependencies' must be a list of packages."
        )
    for item in node.value:
        if isinstance(item, yaml.ScalarNode):
            continue
        pip = (
            isinstance(item, yaml.MappingNode)
            and len(item.value) == 1
            and item.value[0][0].value == _PIP
            and isinstance(item.value[0][1], yaml.SequenceNode)
            and all(isinstance(p, yaml.ScalarNode) for p in item.value[0][1].value)
        )
        if not pip:
            raise EnvironmentDefinitionError(
                f"{_where(shown, item.start_mark)}: a dependency must be a package string or "
                "'pip: [requirement, ...]'."
            )


@v1_keywords
class CondaDependencies:
    """The packages of an environment, in conda's YAML shape (v1's CondaDependencies).

    With no arguments: v1's base spec (python=3.8.13, pip azureml-defaults, channels anaconda and conda-forge).
    runyard satisfies azureml-* requirements itself and maps conda packages to PyPI (docs/environments.md).
    """

    def __init__(
        self,
        conda_dependencies_file_path: str | os.PathLike[str] | None = None,
        _underlying_structure: dict[str, Any] | None = None,
    ) -> None:
        if conda_dependencies_file_path is not None:
            self._conda_dependencies = load_conda_file(os.path.normpath(conda_dependencies_file_path))
        elif _underlying_structure is not None:
            if not isinstance(_underlying_structure, dict):
                raise EnvironmentDefinitionError(
                    "A conda specification must be a mapping with 'name', 'channels' and 'dependencies'."
                )
            self._conda_dependencies = _underlying_structure
        else:
            self._conda_dependencies = default_spec()

    # -- construction -----------------------------------------------------------------------------
    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str = PYTHON_DEFAULT_VERSION,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """v1's factory. `pip_packages=None` keeps azureml-defaults; given packages replace it.
        `pin_sdk_version` has nothing to pin: runyard itself satisfies azureml-* requirements."""
        cd = CondaDependencies()
        if pip_indexurl:
            cd.set_pip_option(f"--find-links {pip_indexurl}")
            cd.set_pip_option(f"--extra-index-url {DEFAULT_SDK_ORIGIN}")
        cd.set_python_version(python_version)
        if pip_packages is not None:
            for package in list(cd.pip_packages):
                cd.remove_pip_package(package)
            for package in pip_packages:
                cd.add_pip_package(package)
        for package in conda_packages or []:
            cd.add_conda_package(package)
        return cd

    @staticmethod
    def merge_requirements(requirements: list[str]) -> list[str]:
        """Join requirements on the same package: ['a>1', 'a<3'] -> ['a>1,<3']."""
        merged: dict[str, list[str]] = {}
        for requirement in requirements:
            name = package_name(requirement)
            merged.setdefault(name, []).append(requirement.strip()[len(name) :].strip())
        return [name + ",".join(c for c in constraints if c) for name, constraints in merged.items()]

    @staticmethod
    def sdk_origin_url() -> str:
        """The package index v1 installs its SDK from."""
        return DEFAULT_SDK_ORIGIN

    def get_default_number_of_packages(self) -> tuple[int, int]:
        """(conda packages, pip packages) in the base spec: (1, 1) as in v1."""
        return 1, 1

    # -- the spec as lists --------------------------------------------------------------------------
    def _items(self) -> list[Any]:
        return self._conda_dependencies.setdefault(_DEPENDENCIES, [])

    def _pip_list(self, create: bool = False) -> list[str] | None:
        for item in self._conda_dependencies.get(_DEPENDENCIES) or []:
            if isinstance(item, dict) and _PIP in item:
                return item[_PIP]
        if not create:
            return None
        pip: list[str] = []
        self._items().append({_PIP: pip})
        return pip

    @property
    def conda_channels(self) -> Iterator[str]:
        """A copy of the channels (editing it changes nothing; use add_channel / remove_channel)."""
        return iter(list(self._conda_dependencies.get(_CHANNELS) or []))

    @property
    def conda_packages(self) -> Iterator[str]:
        """A copy of the conda packages, python=... included."""
        return iter([i for i in self._conda_dependencies.get(_DEPENDENCIES) or [] if isinstance(i, str)])

    @property
    def pip_packages(self) -> Iterator[str]:
        """A copy of the pip requirements (options such as --extra-index-url left out)."""
        return iter([p for p in self._pip_list() or [] if not _is_option(p)])

    @property
    def pip_options(self) -> Iterator[str]:
        """A copy of the pip options (--index-url, --extra-index-url, --find-links, ...)."""
        return iter([p for p in self._pip_list() or [] if _is_option(p)])

    # -- python -------------------------------------------------------------------------------------
    def _python_index(self) -> int | None:
        for index, item in enumerate(self._conda_dependencies.get(_DEPENDENCIES) or []):
            if isinstance(item, str) and package_name(item) == "python":
                return index
        return None

    def get_python_version(self) -> str | None:
        """The version of the `python=...` entry, or None when the spec names none."""
        index = self._python_index()
        if index is None:
            return None
        found = re.search(r"\d+(\.\d+)*([ab]\d+)?", self._items()[index][len("python") :])
        return found.group() if found else None

    def set_python_version(self, version: str) -> None:
        """Pin `python=<version>` (runyard builds with that Python, or says which versions it found)."""
        entry = f"python={version}"
        index = self._python_index()
        if index is None:
            self._items().insert(0, entry)
        else:
            self._items()[index] = entry

    # -- conda ----------------------------------------------------------------------------------------
    def add_channel(self, channel: str) -> None:
        channels = self._conda_dependencies.setdefault(_CHANNELS, [])
        if channel not in channels:
            channels.append(channel)

    def remove_channel(self, channel: str) -> None:
        channels = self._conda_dependencies.get(_CHANNELS) or []
        if channel in channels:
            channels.remove(channel)

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda package; `python=X` sets the Python version instead (v1)."""
        if package_name(conda_package) == "python":
            version = self._version_in(conda_package)
            if version:
                self.set_python_version(version)
                return
        if conda_package not in self._items():
            self._items().append(conda_package)

    def remove_conda_package(self, conda_package: str) -> None:
        if package_name(conda_package) == "python":
            raise EnvironmentDefinitionError(
                "python must not be removed from conda dependencies; change it with set_python_version()."
            )
        if conda_package in self._items():
            self._items().remove(conda_package)

    @staticmethod
    def _version_in(requirement: str) -> str | None:
        found = re.search(r"\d+(\.\d+)*([ab]\d+)?$", requirement)
        return found.group() if found else None

    # -- pip ------------------------------------------------------------------------------------------
    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip requirement; one already there for the same package is replaced (moved to the end)."""
        if _is_option(pip_package):
            raise EnvironmentDefinitionError(
                f"Invalid package name {pip_package!r}: options go through set_pip_option()."
            )
        self.remove_pip_package(pip_package)
        pip = self._pip_list(create=True)
        assert pip is not None
        pip.append(pip_package)

    def remove_pip_package(self, pip_package: str) -> None:
        if _is_option(pip_package):
            raise EnvironmentDefinitionError(
                f"Invalid package name {pip_package!r}: options go through remove_pip_option()."
            )
        pip = self._pip_list()
        if pip is None:
            return
        name = package_name(pip_package).lower()
        pip[:] = [p for p in pip if _is_option(p) or package_name(p).lower() != name]

    def set_pip_option(self, pip_option: str) -> None:
        """Add a pip option, replacing one with the same flag (one --index-url, ...)."""
        if not _is_option(pip_option):
            raise EnvironmentDefinitionError(f"Invalid pip option {pip_option!r}: an option starts with '-'.")
        pip = self._pip_list(create=True)
        assert pip is not None
        flag = pip_option.split()[0]
        for index, item in enumerate(pip):
            if _is_option(item) and item.split()[0] == flag:
                pip[index] = pip_option
                return
        pip.append(pip_option)

    def remove_pip_option(self, pip_option: str) -> None:
        if not _is_option(pip_option):
            raise EnvironmentDefinitionError(f"Invalid pip option {pip_option!r}: an option starts with '-'.")
        pip = self._pip_list()
        if pip is not None:
            flag = pip_option.split()[0]
            pip[:] = [p for p in pip if not (_is_option(p) and p.split()[0] == flag)]

    def set_pip_index_url(self, index_url: str) -> None:
        """v1 passes the whole option: set_pip_index_url('--index-url https://...')."""
        self.set_pip_option(index_url)

    def set_pip_requirements(self, pip_requirements: list[str]) -> None:
        """Replace the whole pip section (packages and options)."""
        pip = self._pip_list(create=True)
        assert pip is not None
        pip[:] = [str(p) for p in pip_requirements]

    def add_tensorflow_pip_package(self, core_type: str = "cpu", version: str | None = None) -> None:
        self._check_core_type(core_type)
        for package in [p for p in self.pip_packages if p.startswith("tensorflow")]:
            self.remove_pip_package(package)
        suffix = "-gpu" if core_type.lower() == "gpu" else ""
        self.add_pip_package(f"tensorflow{suffix}=={version or TENSORFLOW_DEFAULT_VERSION}")

    def add_tensorflow_conda_package(self, core_type: str = "cpu", version: str | None = None) -> None:
        self._check_core_type(core_type)
        for package in [p for p in self.conda_packages if p.startswith("tensorflow")]:
            self.remove_conda_package(package)
        suffix = "-gpu" if core_type.lower() == "gpu" else ""
        self.add_conda_package(f"tensorflow{suffix}={version or TENSORFLOW_DEFAULT_VERSION}")

    def add_cntk_package(self, core_type: str = "cpu") -> None:
        """Refused: CNTK 2.7 (v1's pin) was last released for Python 3.6 and installs on no Python runyard
        runs on."""
        self._check_core_type(core_type)
        raise EnvironmentDefinitionError(
            f"CNTK cannot be added: cntk=={CNTK_DEFAULT_VERSION} (v1's pin) has no build for Python 3.7 or "
            "later, and runyard needs Python >= 3.11. Port the model to PyTorch or ONNX Runtime and "
            "add_pip_package('torch') / add_pip_package('onnxruntime') instead."
        )

    @staticmethod
    def _check_core_type(core_type: str) -> None:
        if str(core_type).lower() not in ("cpu", "gpu"):
            raise EnvironmentDefinitionError(f"Invalid core type {core_type!r}: use 'cpu' or 'gpu'.")

    # -- output ---------------------------------------------------------------------------------------
    def serialize_to_string(self) -> str:
        """The spec as conda YAML (what save() writes)."""
        import yaml

        return _HEADER + yaml.safe_dump(self._conda_dependencies, sort_keys=False, default_flow_style=False)

    def as_dict(self) -> dict[str, Any]:
        """A deep copy of the spec as plain JSON types."""
        return copy.deepcopy(self._conda_dependencies)

    def _check_python(self) -> None:
        if self._python_index() is None:
            raise EnvironmentDefinitionError(
                "Python package is missing from the conda specification; add one with set_python_version()."
            )

    def save(self, path: str | os.PathLike[str] | None = None) -> str:
        """Write the YAML to `path` (a file, whose folder must exist); returns the path."""
        if path is None or os.path.isdir(path):
            raise EnvironmentDefinitionError(
                f"Cannot save a conda specification to {path!r}: pass the file's full path, e.g. 'env.yml'."
            )
        parent = os.path.dirname(os.fspath(path))
        if parent and not os.path.isdir(parent):
            raise EnvironmentDefinitionError(
                f"Cannot save the conda specification to {path}: folder {parent} does not exist."
            )
        self._check_python()
        Path(path).write_text(self.serialize_to_string())
        return Path(path).as_posix()

    def save_to_file(self, base_directory: str | os.PathLike[str], conda_file_path: str | None = None) -> str:
        """Deprecated in v1 (use save): write under `base_directory`; returns the path relative to it."""
        relative = (conda_file_path or f".azureml/{CONDA_FILE_NAME}").replace("\\", "/")
        full = Path(base_directory).resolve() / relative
        full.parent.mkdir(parents=True, exist_ok=True)
        self._check_python()
        full.write_text(self.serialize_to_string())
        return relative

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and other._conda_dependencies == self._conda_dependencies

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CondaDependencies({self._conda_dependencies!r})"

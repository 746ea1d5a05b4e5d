"""Environments: v1's Environment and CondaDependencies, turned into one virtual environment per content
hash, built once with uv and reused by every run that needs the same packages (docs/environments.md).

    definition.py   Environment objects <-> v1's environment JSON (what runs, graphs and the store carry)
    environment.py  Environment, PythonSection, DockerSection, EnvironmentReference (the v1 API)
    conda.py        CondaDependencies and conda YAML files
    curated.py      the local equivalents of v1's curated environments (AzureML-Minimal, ...)
    plan.py         definition JSON -> BuildPlan: pip requirements, Python version, content hash
    interpreters.py which Python interpreters this machine has
    build.py        BuildPlan -> a ready virtual environment (uv, lock, temp folder + rename)
    layer.py        how runyard itself is importable in every built environment
    diagnosis.py    a job that failed on an import: which package, which environment, the fix

Names load lazily (PEP 562): `import runyard` in a job must not pay for YAML and packaging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.lazy_exports import LazyExports

if TYPE_CHECKING:
    from runyard.environments.conda import CondaDependencies
    from runyard.environments.environment import (
        DockerSection,
        Environment,
        EnvironmentReference,
        PythonSection,
    )

_SOURCES = {
    "CondaDependencies": "runyard.environments.conda",
    "DockerSection": "runyard.environments.environment",
    "Environment": "runyard.environments.environment",
    "EnvironmentReference": "runyard.environments.environment",
    "PythonSection": "runyard.environments.environment",
}

__all__ = [
    "CondaDependencies",
    "DockerSection",
    "Environment",
    "EnvironmentReference",
    "PythonSection",
]


_exports = LazyExports(__name__, _SOURCES, globals())


def __getattr__(name: str) -> Any:
    return _exports.load(name)


def __dir__() -> list[str]:
    return _exports.names()

"""Which environment a job runs in, decided at submit: the one place script runs, pipeline steps (and
ParallelRunConfig, issue 14) turn what the user passed into the environment JSON their record keeps.

Resolved at submit, as v1 does: a registered environment's later versions do not change a submitted job.
"""

from __future__ import annotations

from typing import Any


def definition_for(workspace: Any, environment: Any) -> dict[str, Any] | None:
    """The environment JSON (docs/environments.md) a job submitted with `environment` runs in, or None:
    "run with the submitting interpreter as it is" (no environment, or RunConfiguration's untouched default).

    A name (str) is looked up as v1 does, registered environments first, then the curated ones; an unknown
    name raises EnvironmentNotFound at submit, before any run exists. Without a workspace (a graph compiled
    for display) a name stays a name: None here."""
    if environment is None:
        return None
    if isinstance(environment, str):
        if workspace is None:
            return None
        from runyard.environments.environment import Environment

        environment = Environment.get(workspace, environment)
    from runyard.environments.definition import environment_definition

    return environment_definition(environment)


def environment_name(environment: Any, definition: dict[str, Any] | None) -> str | None:
    """The name a run record shows: the definition's, else what was passed (a str, or an object's name)."""
    if definition is not None and definition.get("name"):
        return str(definition["name"])
    name = getattr(environment, "name", environment)
    return None if name is None else str(name)

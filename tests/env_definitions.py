"""v1's environment JSON for tests, as azureml-core's Environment._serialize_to_dict writes it (trimmed to
the keys runyard reads, plus a docker section): one helper for the plan, store and API tests."""

from __future__ import annotations

from typing import Any


def v1_definition(dependencies: list[Any], name: str = "train-env", **extra: Any) -> dict[str, Any]:
    """`dependencies` are conda dependencies: strings and {"pip": [...]} items."""
    return {
        "name": name,
        "version": None,
        "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
        "python": {
            "userManagedDependencies": False,
            "interpreterPath": "python",
            "condaDependenciesFile": None,
            "baseCondaEnvironment": None,
            "condaDependencies": {
                "name": "project_environment",
                "dependencies": list(dependencies),
                "channels": ["anaconda", "conda-forge"],
            },
        },
        "docker": {"enabled": False, "baseImage": "mcr.microsoft.com/azureml/base:latest", "arguments": []},
        **extra,
    }

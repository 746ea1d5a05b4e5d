"""Compute targets as seen from core: a name maps to a launcher that starts a prepared run.

Launchers live above core (runyard.compute); they register here when runyard is imported, so core
can start runs without importing the layer above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace


class Launcher(Protocol):
    def start(self, workspace: Workspace, run_id: str) -> None:
        """Start the run's process and return without waiting for it."""
        ...


_launchers: dict[str, Callable[[], Launcher]] = {}


def register_launcher(kind: str, factory: Callable[[], Launcher]) -> None:
    _launchers[kind] = factory


def launcher_for(target: object) -> Launcher:
    name = target if isinstance(target, str) else getattr(target, "name", None)
    if name in (None, "local"):
        return _launchers["local"]()
    raise InvalidInputError(
        f"Unknown compute target {name!r}. This version runs scripts on compute_target='local'."
    )

"""Compute targets as seen from core: a name maps to a launcher that starts a prepared run.

Launchers live above core (runyard.compute); they register here when runyard is imported, so core
can start runs without importing the layer above it. Named targets (core/compute_target.py: v1's
AmlCompute / ComputeInstance) run on this machine too, so they share the local launcher; the limit on
how many of a target's runs run at once is applied by the run's supervisor (compute/slots.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from runyard.config import LOCAL_TARGET as LOCAL
from runyard.errors import ComputeTargetException

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace


class Launcher(Protocol):
    def start(self, workspace: Workspace, run_id: str) -> None:
        """Start the run's process and return without waiting for it."""
        ...


_launchers: dict[str, Callable[[], Launcher]] = {}


def register_launcher(kind: str, factory: Callable[[], Launcher]) -> None:
    _launchers[kind] = factory


def target_name(target: object) -> str:
    """The name of a compute target given as a name, a ComputeTarget object, or None ('local')."""
    name = target if isinstance(target, str) else getattr(target, "name", None)
    if target is None or name is None:
        return LOCAL
    if not isinstance(name, str) or not name:
        raise ComputeTargetException(
            f"compute_target must be a target name such as 'local' or 'cpu-cluster', or a ComputeTarget; "
            f"got {target!r}."
        )
    return name


def launcher_for(target: object, workspace: Workspace | None = None) -> Launcher:
    """The launcher for `target` (a name or a ComputeTarget). With `workspace`, a named target is looked
    up first, so a run for a target that does not exist is refused before it is recorded: the message
    names the targets there are and how to create one."""
    name = target_name(target)
    if name != LOCAL and workspace is not None:
        workspace.store.get_compute_target(name)  # ComputeTargetException naming the known targets
    return _launchers["local"]()

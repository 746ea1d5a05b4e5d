"""Compute targets: code that starts processes for runs. Importing this package registers them with core.

`runyard/__init__.py` imports this package, so the registration is in place in every process that uses
runyard, before anything launches a run. What is registered is a factory that imports the launcher
when a run is launched: a job's `import runyard` does not load the launching code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.core.targets import Launcher, register_launcher

if TYPE_CHECKING:
    from runyard.compute.local import LocalLauncher


def _local_launcher() -> Launcher:
    from runyard.compute.local import LocalLauncher

    return LocalLauncher()


register_launcher("local", _local_launcher)

__all__ = ["LocalLauncher"]


def __getattr__(name: str) -> Any:
    if name != "LocalLauncher":
        raise AttributeError(f"module 'runyard.compute' has no attribute {name!r}")
    from runyard.compute.local import LocalLauncher

    return LocalLauncher

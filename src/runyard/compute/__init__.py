"""Compute targets: code that starts processes for runs. Importing this package registers them with core."""

from runyard.compute.local import LocalLauncher
from runyard.core.targets import register_launcher

register_launcher("local", LocalLauncher)

__all__ = ["LocalLauncher"]

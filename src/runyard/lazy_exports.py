"""A package's public names, imported on first use (PEP 562).

`import runyard` must cost a job next to nothing (docs/architecture.md, "The job's hot path"), so the
package `__init__` files name where each public name lives instead of importing it. Each keeps its
`__all__` and a TYPE_CHECKING block for type checkers and readers; at run time its module-level
`__getattr__` asks a LazyExports, which imports the source module once and caches the value in the
package's namespace, so later lookups are plain attribute reads. Imports: stdlib only.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


class LazyExports:
    def __init__(self, package: str, sources: Mapping[str, str], namespace: dict[str, Any]) -> None:
        self.package, self.sources, self.namespace = package, sources, namespace

    def load(self, name: str) -> Any:
        """The value of `name`, imported from its source module; AttributeError for an unknown name."""
        source = self.sources.get(name)
        if source is None:
            raise AttributeError(f"module {self.package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        self.namespace[name] = value
        return value

    def names(self) -> list[str]:
        """What dir(package) lists: what is loaded and what can be."""
        return sorted({*self.namespace, *self.sources})

"""Order in a compiled pipeline graph (plain JSON): who waits for whom, and a valid running order.

Lives in engine/ because the scheduler needs it and must not import the authoring layer; the
authoring layer uses it for cycle checks."""

from __future__ import annotations

import graphlib
from typing import Any


def dependencies(graph: dict[str, Any]) -> dict[str, set[str]]:
    """Step name → names of the steps it waits for (data producers and run_after)."""
    return {s["name"]: {i["step"] for i in s["inputs"]} | set(s["run_after"]) for s in graph["steps"]}


def topological_order(graph: dict[str, Any]) -> list[str]:
    """Raises graphlib.CycleError when the steps form a cycle."""
    return list(graphlib.TopologicalSorter(dependencies(graph)).static_order())

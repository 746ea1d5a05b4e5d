"""Lay a pipeline graph out left to right for an SVG drawing.

Each step goes in the column of its longest chain of predecessors, so data flows one way across
the page; within a column steps are ordered by where their predecessors sit (one barycenter pass),
which keeps most edges short and uncrossed for the pipelines people draw by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runyard.engine.graph_order import dependencies, topological_order

NODE_W, NODE_H = 190, 58
GAP_X, GAP_Y = 90, 26
PAD = 16


@dataclass(frozen=True)
class Node:
    name: str
    x: int
    y: int
    w: int = NODE_W
    h: int = NODE_H


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str  # the data passed, or "after" for run_after ordering
    path: str  # SVG path data
    label_x: float
    label_y: float


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(graph: dict[str, Any]) -> Layout:
    deps = dependencies(graph)
    order = topological_order(graph)
    column: dict[str, int] = {}
    for name in order:
        column[name] = 1 + max((column[d] for d in deps[name]), default=-1)
    columns: list[list[str]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    rank = {name: i for i, name in enumerate(order)}
    row: dict[str, float] = {}
    for index, _ in enumerate(columns):
        members = [n for n in order if column[n] == index]
        members.sort(
            key=lambda n: (
                sum(row[d] for d in deps[n]) / len(deps[n]) if deps[n] else rank[n],
                rank[n],
            )
        )
        for position, name in enumerate(members):
            row[name] = position
        columns[index] = members

    tallest = max((len(c) for c in columns), default=0)
    height = PAD * 2 + tallest * NODE_H + max(tallest - 1, 0) * GAP_Y
    nodes: dict[str, Node] = {}
    for index, members in enumerate(columns):
        block = len(members) * NODE_H + max(len(members) - 1, 0) * GAP_Y
        top = (height - block) // 2
        for position, name in enumerate(members):
            nodes[name] = Node(name, PAD + index * (NODE_W + GAP_X), top + position * (NODE_H + GAP_Y))
    width = PAD * 2 + len(columns) * NODE_W + max(len(columns) - 1, 0) * GAP_X

    edges = []
    for step in graph["steps"]:
        labels: dict[str, list[str]] = {}
        for item in step["inputs"]:
            labels.setdefault(item["step"], []).append(item["output"])
        for after in step["run_after"]:
            labels.setdefault(after, []).append("after")
        for source, names in labels.items():
            edges.append(_edge(nodes[source], nodes[step["name"]], ", ".join(dict.fromkeys(names))))
    return Layout(list(nodes.values()), edges, width, height)


def _edge(a: Node, b: Node, label: str) -> Edge:
    x1, y1 = a.x + a.w, a.y + a.h / 2
    x2, y2 = b.x, b.y + b.h / 2
    bend = (x2 - x1) / 2
    path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
    return Edge(a.name, b.name, label, path, (x1 + x2) / 2, (y1 + y2) / 2 - 6)

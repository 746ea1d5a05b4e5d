"""Hold runyard.v1 to Azure ML SDK v1's signatures, and write docs/v1-surface.md from the result.

The table (tools/v1-signatures.json) was generated with `inspect` from the published v1 wheels; names and
parameters are facts, so only the table is kept. Each entry is `azureml.<module>:<Name>` with `init` and
`methods`, every parameter as [name, kind, repr(default) or null].

Matching rules, for every class and method runyard provides:
- every public v1 parameter is present, in v1's relative order, with v1's kind, and v1's default
  (runyard may give a default where v1 has none, never a different one);
- a v1 parameter whose name starts with "_", and v1's *args / **kwargs, may be left out (a mistyped
  keyword then fails with a suggestion instead of vanishing);
- a parameter v1 does not have must be keyword-only (so positional calls keep v1's meaning) or private;
- an entry marked "property" is a property (or cached_property) in runyard too.

    python tools/v1_surface.py            # print mismatches for everything runyard.v1 provides
    python tools/v1_surface.py Workspace  # only names containing "Workspace"
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("v1-signatures.json")


def load_table() -> dict[str, Any]:
    return json.loads(TABLE.read_text())


def runyard_module(key: str) -> str:
    module = key.split(":")[0]
    return "runyard.v1" + module[len("azureml") :]


def resolve(key: str) -> tuple[Any, str | None]:
    """The runyard.v1 object for a table key, or (None, why it is missing)."""
    module_name, name = runyard_module(key), key.split(":")[1]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, f"module {module_name} missing ({exc})"
    try:
        return getattr(module, name), None
    except (AttributeError, ImportError) as exc:
        return None, str(exc)


def compare_parameters(where: str, func: Any, wanted: list[list[Any]]) -> list[str]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        return [f"{where}: no signature ({exc})"]
    have = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
    by_name = {p.name: p for p in have}
    problems = []
    order = []
    for name, kind, default in wanted:
        p = by_name.get(name)
        if p is None:
            if not name.startswith("_") and kind not in ("VAR_POSITIONAL", "VAR_KEYWORD"):
                problems.append(f"{where}: missing parameter {name!r}")
            continue
        order.append(name)
        if p.kind.name != kind:
            problems.append(f"{where}: {name!r} is {p.kind.name}, v1 has {kind}")
        if default is not None:
            got = "<required>" if p.default is inspect.Parameter.empty else repr(p.default)
            if got != default:
                problems.append(f"{where}: {name!r} defaults to {got}, v1 has {default}")
    have_order = [p.name for p in have if p.name in order]
    if have_order != order:
        problems.append(f"{where}: parameter order {have_order}, v1 has {order}")
    v1_names = {w[0] for w in wanted}
    for p in have:
        if p.name in v1_names or p.name.startswith("_"):
            continue
        if p.kind not in (p.KEYWORD_ONLY, p.VAR_KEYWORD):
            problems.append(f"{where}: extra parameter {p.name!r} must be keyword-only")
        elif p.kind is p.VAR_KEYWORD:
            problems.append(f"{where}: **{p.name} catch-all that v1 does not have")
    return problems


def compare_class(key: str, cls: Any, entry: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, missing method names) for one class."""
    problems: list[str] = []
    missing: list[str] = []
    name = key.split(":")[1]
    if "init" in entry:
        problems += compare_parameters(f"{name}()", cls.__init__, entry["init"])
    for method, wanted in entry.get("methods", {}).items():
        attr = inspect.getattr_static(cls, method, None)
        if attr is None:
            missing.append(method)
            continue
        if wanted == "property":
            if not isinstance(attr, property | functools.cached_property):
                problems.append(f"{name}.{method}: v1 has a property, runyard has {type(attr).__name__}")
            continue
        if isinstance(attr, property | functools.cached_property):
            problems.append(f"{name}.{method}: a property, v1 has a method")
            continue
        if isinstance(attr, staticmethod | classmethod):
            attr = attr.__func__
        if not callable(attr):
            if wanted:
                problems.append(f"{name}.{method}: an attribute, v1 has a method with parameters")
            continue
        problems += compare_parameters(f"{name}.{method}()", attr, wanted)
    return problems, missing


def check(filter_text: str = "") -> dict[str, Any]:
    table = load_table()
    report: dict[str, Any] = {}
    for key, entry in table.items():
        if filter_text and filter_text not in key:
            continue
        obj, why = resolve(key)
        if obj is None:
            report[key] = {"available": False, "why": why}
            continue
        if entry.get("kind") == "class":
            problems, missing = compare_class(key, obj, entry)
        elif entry.get("kind") == "function":
            problems, missing = compare_parameters(key, obj, entry.get("params", [])), []
        else:
            problems, missing = [], []
        report[key] = {"available": True, "problems": problems, "missing": missing}
    return report


def main() -> None:
    report = check(sys.argv[1] if len(sys.argv) > 1 else "")
    for key, row in report.items():
        if not row["available"]:
            print(f"{key}: NOT AVAILABLE ({row['why']})")
            continue
        print(f"{key}: {len(row['problems'])} problems, {len(row['missing'])} missing methods")
        for p in row["problems"]:
            print("   ", p)
        if row["missing"]:
            print("    missing:", ", ".join(row["missing"]))


if __name__ == "__main__":
    main()

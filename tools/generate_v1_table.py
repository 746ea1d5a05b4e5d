"""Regenerate tools/v1-signatures.json from an installed Azure ML SDK v1.

Why a generator and not the SDK itself: runyard must never depend on azureml, but it must match v1's names
and parameters exactly. Names, parameter lists and defaults are facts we can record; the SDK's code and
docstrings stay out of the repository. Run it with the python of a scratch venv that has the SDK:

    python3 -m venv /tmp/azsdk
    /tmp/azsdk/bin/pip install 'azureml-core==1.61.*' 'azureml-pipeline-core==1.62.*' \\
        'azureml-pipeline-steps==1.62.*' 'azureml-widgets==1.62.*' 'ipython<8.17'
    /tmp/azsdk/bin/python tools/generate_v1_table.py            # rewrites tools/v1-signatures.json
    /tmp/azsdk/bin/python tools/generate_v1_table.py --check    # exit 1 if the table would change

(azureml.widgets imports `IPython.core.display.display`, which IPython 8.17+ no longer has.)

What is recorded, per module in MODULES:
- the names in the module's `__all__` if it has one; otherwise its public classes and functions whose
  home is an azureml module, plus its UPPER_CASE string constants. A class or function whose home is a
  private module (`azureml._restclient`, ...) is left out unless a public module's `__all__` lists it:
  such names are leftovers of the SDK's own imports, not API;
- a class: `init` (its `__init__` parameters) and `methods`, one entry per public attribute that is a
  property ("property") or callable (its parameters, or null when Python cannot read a signature);
- a function: `params`; a string: only its kind.
Every parameter is [name, kind, repr(default) or null]; a leading `self` is dropped.
Entries already in the table that no listed module produces (such as `azureml.core:VERSION`, which real
code imports although `azureml.core.__all__` omits it) are kept as they are.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
import warnings
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("v1-signatures.json")

MODULES = [
    "azureml.core",
    "azureml.core.workspace",
    "azureml.core.run",
    "azureml.core.experiment",
    "azureml.core.model",
    "azureml.core.environment",
    "azureml.core.conda_dependencies",
    "azureml.core.runconfig",
    "azureml.core.compute",
    "azureml.core.compute_target",
    "azureml.core.authentication",
    "azureml.core.datastore",
    "azureml.core.dataset",
    "azureml.core.script_run_config",
    "azureml.data",
    "azureml.data.datapath",
    "azureml.data.data_reference",
    "azureml.data.dataset_consumption_config",
    "azureml.data.dataset_factory",
    "azureml.data.output_dataset_config",
    "azureml.pipeline.core",
    "azureml.pipeline.core.graph",
    "azureml.pipeline.core.run",
    "azureml.pipeline.core.schedule",
    "azureml.pipeline.steps",
    "azureml.widgets",
    "azureml.exceptions",
]


def parameters(func: Any) -> list[list[Any]] | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [
        [p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default)]
        for p in params
    ]


def class_entry(cls: type) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        try:
            static = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        if isinstance(static, property | functools.cached_property):
            methods[name] = "property"
            continue
        value = getattr(cls, name, None)
        if not callable(value):
            continue  # class-level constants are not part of the signature check
        if isinstance(static, staticmethod):
            methods[name] = parameters(static.__func__)
        else:
            methods[name] = parameters(value)
    return {"init": parameters(cls.__init__), "kind": "class", "methods": methods}


def is_private_home(obj: Any) -> bool:
    home = getattr(obj, "__module__", "") or ""
    return any(part.startswith("_") for part in home.split("."))


def publicly_listed() -> set[int]:
    """ids of objects some listed module names in its __all__ (so a private home is fine for them)."""
    found: set[int] = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            found.add(id(getattr(module, name)))
    return found


def module_names(module: Any, listed: set[int]) -> list[str]:
    if hasattr(module, "__all__"):
        return [name for name in module.__all__ if not name.startswith("_")]
    names = []
    for name in dir(module):
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            home = getattr(obj, "__module__", "") or ""
            if home.startswith("azureml") and (not is_private_home(obj) or id(obj) in listed):
                names.append(name)
        elif isinstance(obj, str) and name.isupper():
            names.append(name)
    return names


def entry_for(obj: Any) -> dict[str, Any] | None:
    if inspect.isclass(obj):
        return class_entry(obj)
    if callable(obj):
        return {"kind": "function", "params": parameters(obj)}
    if isinstance(obj, str):
        return {"kind": "str"}
    return None


def generate(existing: dict[str, Any]) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    listed = publicly_listed()
    table = dict(existing)
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module_names(module, listed):
            entry = entry_for(getattr(module, name))
            key = f"{module_name}:{name}"
            if entry is None:
                continue
            if key in existing and existing[key] != entry:
                print(f"{key}: differs from the committed table (kept the new one)", file=sys.stderr)
            table[key] = entry
    return table


def main() -> int:
    existing = json.loads(TABLE.read_text()) if TABLE.exists() else {}
    table = generate(existing)
    text = json.dumps(table, indent=1, sort_keys=True)
    if "--check" in sys.argv:
        return 0 if text == TABLE.read_text() else 1
    TABLE.write_text(text)
    added = len(table) - len(existing)
    print(f"{TABLE}: {len(table)} names ({added} new)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

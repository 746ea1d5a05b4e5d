"""Hold runyard.v1 to Azure ML SDK v1's signatures, and write docs/v1-surface.md from the result.

The table (tools/v1-signatures.json, written by tools/generate_v1_table.py) was generated with `inspect`
from the published v1 wheels; names and parameters are facts, so only the table is kept. Each entry is
`azureml.<module>:<Name>` with `init` and `methods`, every parameter as [name, kind, repr(default) or null].

Matching rules, for every class and method runyard provides:
- every public v1 parameter is present, in v1's relative order, with v1's kind, and v1's default
  (runyard may give a default where v1 has none, never a different one);
- a v1 parameter whose name starts with "_", and v1's *args / **kwargs, may be left out (a mistyped
  keyword then fails with a suggestion instead of vanishing);
- a parameter v1 does not have must be keyword-only (so positional calls keep v1's meaning) or private;
- an entry marked "property" is a property (or cached_property) in runyard too;
- a method v1 records without a signature (a builtin such as BaseException.with_traceback) only has to exist;
- an exception class's constructor only has to take the message as one positional argument: v1 code
  catches these classes and at most raises them with a message; the rest of v1's constructor parameters
  are Azure service metadata (runyard.errors.RunyardError accepts them as keywords and ignores them).
What runyard lacks is classified in src/runyard/v1_pending.py (which issue brings it, or why not).

    python tools/v1_surface.py              # print mismatches for everything runyard.v1 provides
    python tools/v1_surface.py Workspace    # only table keys containing "Workspace"
    python tools/v1_surface.py --write-doc  # rewrite docs/v1-surface.md
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("v1-signatures.json")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Member:
    """One constructor, method or property of a v1 class, as runyard has it."""

    name: str  # "__init__" for the constructor
    present: bool
    problems: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)  # parameter -> why runyard ignores it


@dataclass
class Entry:
    """One table key, resolved against runyard.v1."""

    key: str  # azureml.module:Name
    kind: str
    obj: Any = None
    why: str | None = None  # set when runyard.v1 does not provide the name
    members: list[Member] = field(default_factory=list)

    @property
    def module(self) -> str:
        return self.key.split(":")[0]

    @property
    def name(self) -> str:
        return self.key.split(":")[1]

    @property
    def available(self) -> bool:
        return self.why is None

    @property
    def problems(self) -> list[str]:
        return [p for m in self.members for p in m.problems]

    @property
    def missing(self) -> list[str]:
        return [m.name for m in self.members if not m.present]


def load_table() -> dict[str, Any]:
    return dict(json.loads(TABLE.read_text()))


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
    from runyard.v1_pending import is_placeholder

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = getattr(module, name)
    except (AttributeError, ImportError) as exc:
        return None, str(exc)
    if is_placeholder(found):
        return None, found.__doc__
    return found, None


def _ignored(func: Any) -> dict[str, str]:
    from runyard.compat import ignored_parameters

    return ignored_parameters(func)


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


def _compare_exception_init(name: str, cls: type) -> list[str]:
    try:
        inspect.signature(cls).bind("message")
    except (TypeError, ValueError):
        return [f"{name}(): an exception class must accept the message as its one positional argument"]
    return []


def compare_class(name: str, cls: Any, entry: dict[str, Any]) -> list[Member]:
    """One Member per v1 constructor/method/property, with what differs."""
    members: list[Member] = []
    if "init" in entry:
        init = Member("__init__", True, ignored=_ignored(cls.__init__))
        if isinstance(cls, type) and issubclass(cls, BaseException):
            init.problems = _compare_exception_init(name, cls)
        elif entry["init"] is not None:
            init.problems = compare_parameters(f"{name}()", cls.__init__, entry["init"])
        members.append(init)
    for method, wanted in entry.get("methods", {}).items():
        attr = inspect.getattr_static(cls, method, None)
        member = Member(method, attr is not None)
        members.append(member)
        if attr is None:
            continue
        if wanted == "property":
            if not isinstance(attr, property | functools.cached_property):
                member.problems.append(
                    f"{name}.{method}: v1 has a property, runyard has {type(attr).__name__}"
                )
            continue
        if isinstance(attr, property | functools.cached_property):
            member.problems.append(f"{name}.{method}: a property, v1 has a method")
            continue
        if isinstance(attr, staticmethod | classmethod):
            attr = attr.__func__
        if not callable(attr):
            if wanted:
                member.problems.append(f"{name}.{method}: an attribute, v1 has a method with parameters")
            continue
        member.ignored = _ignored(attr)
        if wanted is not None:
            member.problems = compare_parameters(f"{name}.{method}()", attr, wanted)
    return members


def check(filter_text: str = "") -> list[Entry]:
    """Every table entry (whose key contains filter_text), resolved and compared."""
    entries = []
    for key, spec in load_table().items():
        if filter_text and filter_text not in key:
            continue
        entry = Entry(key, spec["kind"])
        entry.obj, entry.why = resolve(key)
        entries.append(entry)
        if not entry.available:
            continue
        if spec["kind"] == "class":
            entry.members = compare_class(entry.name, entry.obj, spec)
        elif spec["kind"] == "function":
            problems = compare_parameters(f"{key}()", entry.obj, spec.get("params") or [])
            entry.members = [Member("__call__", True, problems, _ignored(entry.obj))]
        elif spec["kind"] == "str" and not isinstance(entry.obj, str):
            entry.members = [
                Member("value", True, [f"{key}: v1 has a str, runyard has {type(entry.obj).__name__}"])
            ]
    return entries


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    if "--write-doc" in argv:
        sys.path.insert(0, str(Path(__file__).parent))
        from v1_surface_doc import DOC, render

        DOC.write_text(render(check()))
        print(f"wrote {DOC}")
        return 0
    for entry in check(argv[0] if argv else ""):
        if not entry.available:
            print(f"{entry.key}: NOT AVAILABLE ({entry.why})")
            continue
        print(f"{entry.key}: {len(entry.problems)} problems, {len(entry.missing)} missing methods")
        for p in entry.problems:
            print("   ", p)
        if entry.missing:
            print("    missing:", ", ".join(entry.missing))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

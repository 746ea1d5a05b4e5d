"""runyard.v1 against Azure ML SDK v1's signature table (tools/v1-signatures.json).

Every v1 name either resolves in runyard.v1 with v1's parameters, or is classified in
runyard.v1_pending with the issue that brings it (or why it is not planned); the classification never
goes stale; and docs/v1-surface.md is exactly what tools/v1_surface.py renders from all of that.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runyard import v1_pending
from runyard.compat import ignored_parameters

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


surface = _load("v1_surface")
surface_doc = _load("v1_surface_doc")


@pytest.fixture(scope="module")
def entries() -> list[Any]:
    return list(surface.check())


def _first_match(table: dict[str, Any], candidates: tuple[str, str]) -> str | None:
    """The pattern of `table` that classifies (qualified key, bare name), as v1_pending reads it."""
    key, bare = candidates
    for pattern in table:
        if fnmatch.fnmatchcase(key if ":" in pattern else bare, pattern):
            return pattern
    return None


def _is_exact(pattern: str) -> bool:
    return not any(ch in pattern for ch in "*?[")


def test_the_table_is_the_extended_one() -> None:
    table = surface.load_table()
    assert len(table) > 400, (
        "tools/v1-signatures.json lost names; regenerate it with tools/generate_v1_table.py"
    )
    assert table["azureml.core:VERSION"] == {"kind": "str"}


def test_every_v1_name_resolves_or_is_classified(entries: list[Any]) -> None:
    unclassified = [
        e.key for e in entries if not e.available and v1_pending.classify_name(e.module, e.name) is None
    ]
    assert not unclassified, (
        f"v1 names neither in runyard.v1 nor in runyard/v1_pending.py NAMES: {unclassified}"
    )


def test_every_missing_method_is_classified(entries: list[Any]) -> None:
    unclassified = sorted(
        {
            f"{e.name}.{m.name}"
            for e in entries
            for m in e.members
            if not m.present and v1_pending.classify_method(e.name, m.name) is None
        }
    )
    assert not unclassified, f"v1 methods missing from runyard and not in v1_pending.METHODS: {unclassified}"


def test_no_pending_entry_is_stale(entries: list[Any]) -> None:
    """An entry that matches nothing missing, or names exactly something runyard now has, must go."""
    used: set[str | None] = set()
    stale = []
    for e in entries:
        pattern = _first_match(v1_pending.NAMES, (e.key, e.name))
        if not e.available:
            used.add(pattern)
        elif pattern and _is_exact(pattern):
            stale.append(f"{pattern} (runyard.v1 has {e.key})")
        for m in e.members:
            if m.name in ("__init__", "__call__", "value"):
                continue
            mpattern = _first_match(v1_pending.METHODS, (f"{e.name}.{m.name}", f"{e.name}.{m.name}"))
            if not m.present:
                used.add(mpattern)
            elif mpattern and _is_exact(mpattern):
                stale.append(f"{mpattern} (runyard has {e.name}.{m.name})")
    stale += [p for p in [*v1_pending.NAMES, *v1_pending.METHODS] if p not in used]
    assert not stale, f"stale entries in runyard/v1_pending.py, remove them: {sorted(set(stale))}"


def test_pending_reasons_name_their_issue() -> None:
    for pattern, pending in [*v1_pending.NAMES.items(), *v1_pending.METHODS.items()]:
        assert pending.reason, pattern
        if pending.issue is not None:
            assert f"issue {pending.issue}" in pending.reason, (
                f"{pattern}: reason should name issue {pending.issue}"
            )


def test_available_names_match_v1_signatures(entries: list[Any]) -> None:
    """Other work in issue 11 is still aligning signatures; the list printed here is what is left."""
    problems = sorted({p for e in entries for p in e.problems})
    assert not problems, "runyard.v1 differs from v1's signatures:\n" + "\n".join(problems)


def test_the_checker_sees_a_wrong_signature() -> None:
    def log(name: str, value: object, step: int = 0) -> None: ...

    wanted = [
        ["name", "POSITIONAL_OR_KEYWORD", None],
        ["value", "POSITIONAL_OR_KEYWORD", None],
        ["description", "POSITIONAL_OR_KEYWORD", "''"],
        ["step", "POSITIONAL_OR_KEYWORD", "None"],
    ]
    problems = surface.compare_parameters("Run.log()", log, wanted)
    assert "Run.log(): missing parameter 'description'" in problems
    assert "Run.log(): 'step' defaults to 0, v1 has None" in problems


def _v1_callables() -> list[tuple[str, Any]]:
    """Every function and method reachable from runyard.v1's exported names."""
    found = []
    for path in sorted((Path(v1_pending.__file__).parent / "v1").rglob("*.py")):
        if path.name == "__main__.py":
            continue
        rel = path.relative_to(Path(v1_pending.__file__).parent).with_suffix("")
        module = importlib.import_module("runyard." + ".".join(p for p in rel.parts if p != "__init__"))
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj):
                for klass in obj.__mro__:
                    if not klass.__module__.startswith("runyard"):
                        continue
                    for attr, value in vars(klass).items():
                        if isinstance(value, staticmethod | classmethod):
                            value = value.__func__
                        if callable(value):
                            found.append((f"{name}.{attr}", value))
            elif callable(obj):
                found.append((name, obj))
    return found


def test_every_ignored_parameter_is_in_the_surface_doc() -> None:
    doc = surface_doc.DOC.read_text()
    missing = [
        f"{where}({param}): {reason}"
        for where, func in _v1_callables()
        for param, reason in ignored_parameters(func).items()
        if reason not in doc
    ]
    assert not missing, f"v1_ignores reasons missing from docs/v1-surface.md: {missing}"


def test_surface_doc_is_current(entries: list[Any]) -> None:
    assert surface_doc.DOC.read_text() == surface_doc.render(entries), (
        "docs/v1-surface.md is out of date; regenerate it with `python tools/v1_surface.py --write-doc`"
    )


def test_unknown_keyword_suggests_the_right_one(tmp_path: Path) -> None:
    from runyard.v1.core import Workspace

    with pytest.raises(TypeError, match="Did you mean 'name'"):
        Workspace.get(nmae=str(tmp_path / "ws"))  # type: ignore[call-arg]


def test_unknown_submit_keyword_for_a_pipeline_is_refused(tmp_path: Path) -> None:
    from runyard.v1.core import Experiment, Workspace
    from runyard.v1.pipeline.core import Pipeline
    from runyard.v1.pipeline.steps import PythonScriptStep

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hello.py").write_text("print('hello')\n")
    ws = Workspace.create(path=str(tmp_path / "ws"))
    step = PythonScriptStep(script_name="hello.py", source_directory=str(tmp_path / "src"))
    pipeline = Pipeline(ws, [step])
    with pytest.raises(TypeError, match="Did you mean 'pipeline_parameters'"):
        Experiment(ws, "typo").submit(pipeline, pipeline_paramters={"x": 1})


def test_unknown_script_run_config_keyword_suggests_the_right_one(tmp_path: Path) -> None:
    from runyard.v1.core import ScriptRunConfig

    with pytest.raises(TypeError, match="Did you mean 'script'"):
        ScriptRunConfig(source_directory=str(tmp_path), scirpt="train.py")  # type: ignore[call-arg]

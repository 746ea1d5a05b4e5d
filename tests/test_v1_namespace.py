"""runyard.v1 mirrors azureml's module tree with re-exports only, and says clearly what it lacks."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

import runyard
from runyard.errors import AzureMLException, RunyardError, UserErrorException
from runyard.v1_pending import V1NameNotAvailable, V1NotAvailableWarning, is_placeholder

V1 = Path(runyard.__file__).parent / "v1"
OWNED_ELSEWHERE = {"__main__.py"}  # `python -m runyard.v1`, a runner rather than a re-export module

ISSUE_MODULES = [
    "core",
    "core.workspace",
    "core.run",
    "core.experiment",
    "core.model",
    "core.environment",
    "core.conda_dependencies",
    "core.runconfig",
    "core.compute",
    "core.compute_target",
    "core.authentication",
    "core.datastore",
    "core.dataset",
    "core.script_run_config",
    "data",
    "data.datapath",
    "data.data_reference",
    "data.dataset_consumption_config",
    "data.output_dataset_config",
    "pipeline.core",
    "pipeline.core.graph",
    "pipeline.core.run",
    "pipeline.core.schedule",
    "pipeline.steps",
    "widgets",
    "exceptions",
]


def _module_files() -> list[Path]:
    return sorted(p for p in V1.rglob("*.py") if p.name not in OWNED_ELSEWHERE)


def _module_name(path: Path) -> str:
    parts = path.relative_to(V1.parent).with_suffix("").parts
    return "runyard." + ".".join(p for p in parts if p != "__init__")


@pytest.mark.parametrize("module", ISSUE_MODULES)
def test_every_module_the_issue_lists_imports(module: str) -> None:
    imported = importlib.import_module(f"runyard.v1.{module}")
    assert imported.__doc__ == f"azureml.{module}"
    for name in imported.__all__:
        getattr(imported, name)


def test_v1_names_are_runyards_own_objects() -> None:
    from runyard.v1.core import Experiment, Run, Workspace
    from runyard.v1.core.workspace import Workspace as Workspace2
    from runyard.v1.exceptions import AzureMLException as V1AzureMLException

    assert Workspace is runyard.Workspace is Workspace2
    assert Experiment is runyard.Experiment and Run is runyard.Run
    assert V1AzureMLException is RunyardError


def test_version_is_runyards_version() -> None:
    from runyard.v1.core import VERSION
    from runyard.v1.core.workspace import VERSION as WORKSPACE_VERSION

    assert VERSION == WORKSPACE_VERSION == runyard.__version__


@pytest.fixture
def later_issue_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """azureml.pipeline.core.PipelineDraft, classed as arriving with a later issue. Issue 15 brought the
    last name that had an issue number; the placeholder mechanism stays for the next such name."""
    monkeypatch.setitem(
        runyard.v1_pending.NAMES,
        "PipelineDraft",
        runyard.v1_pending.Pending(99, "drafts arrive with issue 99"),
    )
    # the warning comes once per process: forget placeholders other tests (in this worker) already made
    monkeypatch.setattr(runyard.v1_pending, "_placeholders", {})
    return "PipelineDraft"


def test_a_pending_name_imports_and_says_which_issue_brings_it_when_used(later_issue_name: str) -> None:
    """One name a later issue brings must not fail the whole import line of a ported notebook; it
    warns at the import and raises the same clear message on any use."""
    with pytest.warns(V1NotAvailableWarning, match="azureml.pipeline.core.PipelineDraft is not available"):
        from runyard.v1.pipeline.core import Pipeline, PipelineDraft
    assert Pipeline is runyard.pipeline.Pipeline
    expected = (
        "azureml.pipeline.core.PipelineDraft is not available in runyard yet: drafts arrive with issue 99 "
        "(see docs/v1-surface.md)"
    )
    with pytest.raises(ImportError) as caught:
        PipelineDraft()
    assert str(caught.value) == expected
    assert isinstance(caught.value, V1NameNotAvailable) and isinstance(caught.value, RunyardError)
    with pytest.raises(V1NameNotAvailable, match=r"PipelineDraft.get: .*issue 99"):
        PipelineDraft.get  # noqa: B018
    assert not isinstance(object(), PipelineDraft)


def test_a_pending_name_as_an_attribute_is_the_same_placeholder(later_issue_name: str) -> None:
    import runyard.v1.pipeline.core as core

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, again = core.PipelineDraft, core.PipelineDraft
    assert first is again and is_placeholder(first)
    with pytest.raises(
        V1NameNotAvailable, match=r"PipelineDraft is not available in runyard yet: .*issue 99"
    ):
        first(name="score")


def test_a_not_planned_name_says_why() -> None:
    with pytest.raises(
        ImportError, match=r"azureml.core.Webservice is not planned in runyard: model deployment"
    ):
        from runyard.v1.core import Webservice  # noqa: F401


def test_an_unknown_name_is_a_plain_attribute_error() -> None:
    import runyard.v1.core as core

    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        core.NoSuchThing  # noqa: B018
    assert not hasattr(core, "__wrapped__")


def test_v1_exceptions_carry_v1s_interface() -> None:
    cause = KeyError("k")
    error = UserErrorException("bad input", inner_exception=cause)
    assert isinstance(error, AzureMLException) and isinstance(error, ValueError)
    assert error.message == "bad input" and error.inner_exception is cause


def _allowed(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom | ast.Import):
        return True
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ):
        return True  # the docstring
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        target = node.targets[0].id
        if target == "__all__":
            return isinstance(node.value, ast.List)
        if target == "__getattr__":
            return _lazy_sources(node) is not None
    return False


def _lazy_sources(node: ast.Assign) -> dict[str, str] | None:
    """The names a `__getattr__ = module_getattr(__name__[, {name: "module[:attribute]"}])` line
    re-exports (on first use); None for any other form."""
    call = node.value
    if not (
        isinstance(call, ast.Call)
        and ast.unparse(call.func) == "module_getattr"
        and not call.keywords
        and [ast.unparse(arg) for arg in call.args[:1]] == ["__name__"]
        and len(call.args) <= 2
    ):
        return None
    if len(call.args) == 1:
        return {}
    table = call.args[1]
    if not isinstance(table, ast.Dict) or not all(
        isinstance(part, ast.Constant) and isinstance(part.value, str)
        for part in [*table.keys, *table.values]
    ):
        return None
    return {key.value: value.value for key, value in zip(table.keys, table.values, strict=True)}  # type: ignore[union-attr]


@pytest.mark.parametrize("path", _module_files(), ids=lambda p: str(p.relative_to(V1)))
def test_v1_modules_only_re_export(path: Path) -> None:
    tree = ast.parse(path.read_text())
    extra = [ast.unparse(node).splitlines()[0] for node in tree.body if not _allowed(node)]
    assert not extra, f"{path} must only re-export names (imports, __all__, docstring, __getattr__): {extra}"
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "__getattr__":
            lazy = _lazy_sources(node) or {}
    imported |= set(lazy)
    module = importlib.import_module(_module_name(path))
    assert set(getattr(module, "__all__", [])) <= imported
    assert set(imported) - {"module_getattr"} <= set(getattr(module, "__all__", [])) | {"module_getattr"}
    for name, source in lazy.items():  # each name loaded on first use is the object its source defines
        where, _, attribute = source.partition(":")
        assert getattr(module, name) is getattr(importlib.import_module(where), attribute or name), name

"""The rewrite of one piece of Python source: `azureml.` -> `runyard.v1.`, with libcst.

libcst keeps every comment, blank line and quote as it was, so a ported file differs from the original
only in the module names. What is rewritten, and why only that:
- `import azureml.core [as x]` and `from azureml.core import X`: the module names;
- the name `azureml` where it refers to such an import (`azureml.core.VERSION` after `import azureml.core`):
  the import now binds `runyard`, so the old name would be unbound. A notebook is one namespace split into
  cells: with `bound=True` (another cell's `import azureml...` binds the name) a free `azureml` is rewritten
  too, and `Ported.binds` says whether this source binds it at module level;
- a string naming a module in `importlib.import_module("azureml.core")`, `__import__(...)` and
  `importlib.util.find_spec(...)`: the only strings that are clearly imports.
Other strings and comments (a pip requirement `azureml-core`, a log message) are not code and stay.
An import of a v1 module runyard.v1 lacks (v1's estimators in `azureml.train`) is rewritten too, and
listed in `Ported.missing` with what to use instead (porting/missing.py): the port reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import (
    ExpressionContext,
    ExpressionContextProvider,
    GlobalScope,
    PositionProvider,
    QualifiedNameProvider,
    QualifiedNameSource,
    ScopeProvider,
)

from runyard.porting.missing import Missing, runyard_lacks

OLD = "azureml"
NEW = "runyard.v1"
#: Calls whose first argument is a module name.
IMPORT_CALLS = {"importlib.import_module", "builtins.__import__", "importlib.util.find_spec"}


class PortError(Exception):
    """Source that cannot be ported (it does not parse): the caller reports it and leaves it unchanged."""


def _is_old(dotted: str) -> bool:
    return dotted == OLD or dotted.startswith(OLD + ".")


def _new_name(dotted: str) -> str:
    return NEW + dotted[len(OLD) :]


def _dotted(node: cst.BaseExpression) -> str | None:
    """`a.b.c` as a string; None for anything that is not a plain dotted name."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def _expression(dotted: str) -> cst.Attribute | cst.Name:
    """`runyard.v1.core` as a libcst Name/Attribute chain."""
    parts = dotted.split(".")
    node: cst.Attribute | cst.Name = cst.Name(parts[0])
    for part in parts[1:]:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def _string_value(node: cst.BaseExpression) -> tuple[str, str, str] | None:
    """(prefix+quote, text, quote) of a plain string literal without escapes; None otherwise."""
    if not isinstance(node, cst.SimpleString) or "\\" in node.value:
        return None
    quote = node.quote
    prefix = node.prefix
    if "b" in prefix.lower():
        return None
    return prefix + quote, node.value[len(prefix) + len(quote) : -len(quote)], quote


class _Rewriter(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (
        QualifiedNameProvider,
        ExpressionContextProvider,
        ScopeProvider,
        PositionProvider,
    )

    def __init__(self, bound: bool) -> None:
        super().__init__()
        self.rewrites = 0
        self._in_import = 0
        #: `azureml` is bound by an import elsewhere in the same namespace (another notebook cell).
        self._bound = bound
        #: This source binds `azureml` at module level (`import azureml.core`, no `as`).
        self.binds = False
        #: Imports of v1 modules runyard.v1 does not have.
        self.missing: list[Missing] = []

    def _check(self, node: cst.CSTNode, module: str) -> None:
        if runyard_lacks(module):
            line = self.get_metadata(PositionProvider, node).start.line
            self.missing.append(Missing(line, module))

    # --- import statements ------------------------------------------------------------------------------
    def visit_Import(self, node: cst.Import) -> None:
        self._in_import += 1
        if isinstance(self.get_metadata(ScopeProvider, node, None), GlobalScope) and any(
            alias.asname is None and _is_old(_dotted(alias.name) or "") for alias in node.names
        ):
            self.binds = True

    def leave_Import(self, original: cst.Import, updated: cst.Import) -> cst.Import:
        self._in_import -= 1
        names = []
        for alias in updated.names:
            dotted = _dotted(alias.name)
            if dotted is not None and _is_old(dotted):
                alias = alias.with_changes(name=_expression(_new_name(dotted)))
                self.rewrites += 1
                self._check(original, dotted)
            names.append(alias)
        return updated.with_changes(names=names)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self._in_import += 1

    def leave_ImportFrom(self, original: cst.ImportFrom, updated: cst.ImportFrom) -> cst.ImportFrom:
        self._in_import -= 1
        if updated.relative or updated.module is None:
            return updated
        dotted = _dotted(updated.module)
        if dotted is None or not _is_old(dotted):
            return updated
        self.rewrites += 1
        self._check(original, dotted)
        return updated.with_changes(module=_expression(_new_name(dotted)))

    # --- uses of the name an `import azureml...` binds ---------------------------------------------------
    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if self._in_import or original.value != OLD:
            return updated
        if self.get_metadata(ExpressionContextProvider, original, None) != ExpressionContext.LOAD:
            return updated  # `azureml = ...`, `del azureml`, `global azureml`: a name, not the import's use
        names = self.get_metadata(QualifiedNameProvider, original, set())
        scope = self.get_metadata(ScopeProvider, original, None)
        free = scope is not None and not scope[OLD]  # nothing in this source binds the name
        if any(q.name == OLD and q.source == QualifiedNameSource.IMPORT for q in names) or (
            self._bound and free
        ):
            self.rewrites += 1
            return _expression(NEW)
        return updated

    # --- importlib.import_module("azureml.core") and friends ----------------------------------------------
    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if not updated.args:
            return updated
        called = self.get_metadata(QualifiedNameProvider, original.func, set())
        if not any(q.name in IMPORT_CALLS for q in called):
            return updated
        first = updated.args[0]
        literal = _string_value(first.value)
        if literal is None or not _is_old(literal[1]):
            return updated
        opening, text, quote = literal
        self.rewrites += 1
        self._check(original, text)
        new_value = cst.SimpleString(f"{opening}{_new_name(text)}{quote}")
        return updated.with_changes(args=[first.with_changes(value=new_value), *updated.args[1:]])


def _syntax_error(code: str, exc: cst.ParserSyntaxError) -> str:
    """Python's own words for the error (libcst's list every token it expected)."""
    try:
        compile(code, "<port>", "exec", dont_inherit=True)
    except SyntaxError as error:
        return f"{error.msg} (line {error.lineno})"
    except ValueError:  # a NUL byte, for one
        pass
    return f"libcst cannot parse line {exc.raw_line}, column {exc.raw_column}"


@dataclass
class Ported:
    code: str
    rewrites: int
    #: The source binds the name `azureml` at module level (see `port_source`).
    binds: bool = False
    #: Imports of v1 modules runyard.v1 does not have (rewritten all the same), in source order.
    missing: list[Missing] = field(default_factory=list)


def port_source(code: str, *, bound: bool = False) -> Ported:
    """Rewrite one module's source; raises PortError when it does not parse. `bound`: the name `azureml`
    is bound by an import elsewhere in the same namespace, so its free uses here are that import's."""
    try:
        module = cst.parse_module(code)
    except cst.ParserSyntaxError as exc:
        raise PortError(f"not valid Python: {_syntax_error(code, exc)}") from None
    rewriter = _Rewriter(bound)
    new = cst.MetadataWrapper(module).visit(rewriter)
    missing = sorted(rewriter.missing, key=lambda m: m.line)
    return Ported(new.code if rewriter.rewrites else code, rewriter.rewrites, rewriter.binds, missing)

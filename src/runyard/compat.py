"""Keeping Azure ML SDK v1's call signatures honest.

runyard's public classes take v1's parameter names, order and defaults (docs/v1-surface.md). Two things
make that safe rather than merely permissive:

- `v1_ignores(reason=...)` marks the v1 parameters runyard accepts but cannot honour locally
  (`auth`, `vm_size`, Docker settings, ...). Passing one with a value other than its default warns once per
  process, naming the parameter and why; the reasons are read back by the surface doc generator.
- `v1_keywords` makes a mistyped keyword a `TypeError` that suggests the right one, instead of Python's bare
  "unexpected keyword argument"; `check_keywords` does the same for the few v1 calls that take `**kwargs`
  (such as `Experiment.submit`), where a typo would otherwise be dropped silently.

A leaf module: anyone may import it, it imports nothing from runyard.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


class V1ParameterIgnored(UserWarning):
    """A v1 parameter was given a value that runyard accepts but does not act on."""


def warn_ignored(where: str, parameter: str, reason: str, stacklevel: int = 4) -> None:
    """Warn once per process that `where`'s `parameter` has no effect in runyard, and why.

    `stacklevel` counts as warnings.warn does, from this function (1): the warning should name the
    user's line (a notebook shows that line, not the frame of runyard or IPython that called it)."""
    key = (where, parameter)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(
        f"{where}: parameter {parameter!r} is accepted for Azure ML v1 compatibility but ignored: {reason}",
        V1ParameterIgnored,
        stacklevel=stacklevel,
    )


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The `stacklevel` for a warn_ignored call made by the caller of this function that names the first
    frame outside runyard: the user's line, also when runyard's own code made the call on their behalf
    (Environment.from_docker_image sets docker.base_image)."""
    frame = sys._getframe(2)  # the caller's caller: warn_ignored's level 3
    level = 3
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def v1_ignores(**reasons: str) -> Callable[[F], F]:
    """Decorate a function whose listed parameters are accepted and ignored, each with its reason.

    The warning fires only when the caller passes a value different from the parameter's default, so
    `Workspace(sub, rg, name)` is quiet while `auth=ServicePrincipalAuthentication(...)` is named once.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        unknown = set(reasons) - set(signature.parameters)
        if unknown:
            raise TypeError(f"v1_ignores on {func.__qualname__} names missing parameters {sorted(unknown)}")
        defaults = {name: signature.parameters[name].default for name in reasons}
        where = func.__qualname__.replace(".__init__", "")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return func(*args, **kwargs)  # let Python (or v1_keywords) report the bad call
            for name, reason in reasons.items():
                if name in bound.arguments and not same_value(bound.arguments[name], defaults[name]):
                    warn_ignored(where, name, reason)
            return func(*args, **kwargs)

        wrapper.__v1_ignored__ = dict(reasons)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def same_value(value: Any, default: Any) -> bool:
    """Whether `value` is the default (or equal to it): setting a default changes nothing to warn about."""
    if default is inspect.Parameter.empty:
        return False
    try:
        return bool(value is default or value == default)
    except Exception:
        return False


def ignored_parameters(func: Callable[..., Any]) -> dict[str, str]:
    """The reasons `v1_ignores` recorded on `func` (looking through other wrappers), or {}."""
    while func is not None:
        found = getattr(func, "__v1_ignored__", None)
        if found is not None:
            return dict(found)
        func = getattr(func, "__wrapped__", None)  # type: ignore[assignment]
    return {}


def suggest(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_keywords(where: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise TypeError for any keyword in `given` that is not `allowed`, with a suggestion."""
    allowed = list(allowed)
    for name in given:
        if name not in allowed:
            raise TypeError(
                f"{where}() got an unexpected keyword argument {name!r}.{suggest(name, allowed)} "
                f"It accepts: {', '.join(allowed) or 'no extra keywords'}."
            )


def _with_suggestions(func: F, where: str) -> F:
    signature = inspect.signature(func)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return func  # the function checks its own **kwargs with check_keywords
    names = [
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "cls")
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TypeError:
            # An unknown keyword fails while binding, before the body runs, so nothing happened yet.
            if kwargs and any(k not in names for k in kwargs):
                check_keywords(where, {k: v for k, v in kwargs.items() if k not in names}, names)
            raise

    return wrapper  # type: ignore[return-value]


class MissingV1Attribute(AttributeError):
    """A public attribute the object lacks. The message (built only when shown, since getattr(obj, x,
    default) probes raise it too) suggests a close name, or says which issue brings a v1 method runyard
    does not have yet, or why it is not planned."""

    def __init__(self, obj: object, name: str) -> None:
        super().__init__(name)
        self._obj, self._name = obj, name

    def __str__(self) -> str:
        cls = type(self._obj).__name__
        message = f"{cls!r} object has no attribute {self._name!r}."
        from runyard.v1_pending import exact_method_entry  # a leaf table; imported only to explain

        pending = exact_method_entry(cls, self._name)
        if pending is not None:
            return f"{message} {pending}"
        public = [n for n in dir(type(self._obj)) if not n.startswith("_")]
        return message + suggest(self._name, public)


def missing_attribute(self: object, name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
    raise MissingV1Attribute(self, name)


def v1_keywords(cls: C) -> C:
    """Class decorator: every public method (and __init__) explains a mistyped keyword, and a missing
    public attribute says whether v1 had it (and which issue brings it) or suggests a close name."""
    if not any("__getattr__" in vars(base) for base in cls.__mro__[:-1]):
        cls.__getattr__ = missing_attribute  # type: ignore[attr-defined]
    for attr, value in list(vars(cls).items()):
        if attr.startswith("_") and attr != "__init__":
            continue
        where = f"{cls.__name__}.{attr}" if attr != "__init__" else cls.__name__
        if isinstance(value, staticmethod):
            setattr(cls, attr, staticmethod(_with_suggestions(value.__func__, where)))
        elif isinstance(value, classmethod):
            setattr(cls, attr, classmethod(_with_suggestions(value.__func__, where)))
        elif inspect.isfunction(value):
            setattr(cls, attr, _with_suggestions(value, where))
    return cls

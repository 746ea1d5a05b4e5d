"""A pipeline graph's validation errors in the graph's own terms (engine/graph_spec.py parses it):
steps named by their name, name rules said in words, a union's errors reported for the member meant."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

#: Names that end up in paths or environment variable names: no '/', no leading '.', no '..'.
SAFE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"

#: What a SafeName may hold, in words (pydantic would print the regular expression).
_NAME_RULE = "letters, digits and '_', '.' or '-' (not first), at most 128 characters"
#: pydantic's location parts that name a union member or a validator, not a field of the graph.
_TAG = re.compile(r"^([A-Z][A-Za-z0-9]*|str|int|float|bool|none|constrained-str|function-.*|.*\[.*\])$")


def _step_where(loc: list[Any], data: Any) -> str:
    """'step <name> (arguments.0)' for a location inside a step, else the dotted location."""
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        try:
            name = data["steps"][loc[1]]["name"]
        except (KeyError, IndexError, TypeError):
            name = None
        if isinstance(name, str):
            rest = ".".join(str(p) for p in loc[2:])
            return f"step {name!r}" + (f" ({rest})" if rest else "")
    return ".".join(str(p) for p in loc) or "graph"


def _problem(err: Any, data: Any) -> str:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and _TAG.match(p))]
    where, value = _step_where(loc, data), err.get("input")
    if err["type"] == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == SAFE_PATTERN:
        return f"{where}: {value!r} is not a valid name: use {_NAME_RULE}"
    if err["type"] == "missing":
        return f"{where} is required"
    if err["type"] == "extra_forbidden":
        return f"{where} is not a known field: {err['msg']}"
    return f"{where}: {err['msg']} (got {value!r})"


def describe_errors(exc: ValidationError, data: Any = None) -> str:
    """The validation errors in the graph's own terms: a union (an argument is a literal, a parameter, an
    input or an output) reports what is wrong with the member the value meant, not that it lacks the
    other members' keys; a step is named by its name, a name rule is said in words."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for err in exc.errors():
        loc = list(err["loc"])
        cut = next((i for i, p in enumerate(loc) if isinstance(p, str) and _TAG.match(p)), len(loc))
        groups.setdefault(tuple(loc[:cut]), []).append(err)
    problems: list[str] = []
    for prefix, errs in groups.items():
        if len(errs) > 1 and any(isinstance(p, str) and _TAG.match(p) for p in errs[0]["loc"]):
            meant = [e for e in errs if e["type"] not in ("missing", "extra_forbidden")]
            if not meant:  # none of the members fits: say which shapes it may have
                keys = sorted({str(e["loc"][-1]) for e in errs if e["type"] == "missing"})
                where = _step_where(list(prefix), data)
                problems.append(
                    f"{where}: {errs[0].get('input')!r} is not an object with one of the keys {keys}"
                )
                continue
            errs = meant
        for err in errs:
            text = _problem(err, data)
            if text not in problems:
                problems.append(text)
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "; ".join(problems[:5]) + more

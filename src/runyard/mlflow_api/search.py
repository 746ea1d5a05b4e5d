"""runs/search and experiments/search: MLflow's filter and order_by grammar parsed here, answered by the
store in SQL (store/sql_mlflow_search.py), one page at a time.

The grammar is MLflow's: AND-ed comparisons of `<entity>.<key>` (backquoted or quoted keys allowed; a
bare key is an attribute), with the comparators each entity allows; metrics compare with numbers,
params and tags with quoted strings; only run_id (experiment_id for experiments) takes IN lists.
Errors carry MLflow's codes and wording, so clients that match on them see the same message. Page
tokens are opaque to clients (an offset in a total order, as MLflow's own are).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from pydantic import field_validator

from runyard.errors import NotFoundError
from runyard.mlflow_api.convert import DEFAULT_EXPERIMENT, TO_MLFLOW, experiments_json, runs_json
from runyard.mlflow_api.dispatch import Body, MlflowContext, route
from runyard.mlflow_api.errors import invalid
from runyard.mlflow_api.metrics import page_offset, page_token
from runyard.store.sql_mlflow_search import (
    Condition,
    MlflowExperimentQuery,
    MlflowRunQuery,
    OrderKey,
)

IDENTIFIERS = ["metric", "parameter", "tag", "attribute", "dataset"]
_ENTITY = {
    **dict.fromkeys(("metric", "metrics"), "metric"),
    **dict.fromkeys(("parameter", "parameters", "param", "params"), "param"),
    **dict.fromkeys(("tag", "tags"), "tag"),
    **dict.fromkeys(("attribute", "attributes", "attr", "run"), "attribute"),
    **dict.fromkeys(("dataset", "datasets"), "dataset"),
}
_ALIASES = {"created": "start_time", "Created": "start_time", "run name": "run_name", "Run name": "run_name"}
_ALIASES["Run Name"] = "run_name"
_NUMERIC_OPS = {">", ">=", "!=", "=", "<", "<="}
_STRING_OPS = {"!=", "=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"}
_STRING_ATTRIBUTE_OPS = {"!=", "=", "LIKE", "ILIKE", "IN", "NOT IN"}

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<dquoted>"[^"]*")
    | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<ident>(?:`[^`]*`|[A-Za-z_][\w]*)(?:\.(?:`[^`]*`|"[^"]*"|'[^']*'|[\w]+))*)
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<list>\((?:[^()'"]|'[^']*'|"[^"]*")*\))
    | (?P<other>\S+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Entities:
    """What one search API accepts: run search or experiment search."""

    attributes: frozenset[str]
    numeric: frozenset[str]
    orderable: frozenset[str]
    list_keys: frozenset[str]
    entity_types: frozenset[str]


RUNS = Entities(
    attributes=frozenset(
        {"run_id", "run_name", "user_id", "status", "start_time", "end_time", "artifact_uri", *_ALIASES}
    ),
    numeric=frozenset({"start_time", "end_time", "created", "Created"}),
    orderable=frozenset(
        {"run_id", "run_name", "user_id", "status", "start_time", "end_time", "artifact_uri", "created"}
        | {"Created"}
    ),
    list_keys=frozenset({"run_id"}),
    entity_types=frozenset({"metric", "param", "tag", "attribute"}),
)
EXPERIMENTS = Entities(
    attributes=frozenset({"name", "experiment_id", "creation_time", "last_update_time"}),
    numeric=frozenset({"creation_time", "last_update_time"}),
    orderable=frozenset({"name", "experiment_id", "creation_time", "last_update_time"}),
    list_keys=frozenset({"experiment_id"}),
    entity_types=frozenset({"tag", "attribute"}),
)


def _unquote(text: str) -> str:
    for q in ("`", '"', "'"):
        if len(text) >= 2 and text[0] == q and text[-1] == q:
            return text[1:-1]
    return text


def identifier(text: str, valid_attributes: frozenset[str]) -> tuple[str, str]:
    """`entity.key` (or a bare attribute key) -> (entity, key), in MLflow's terms and wording."""
    entity_text, dot, key = text.partition(".")
    if not dot:
        entity_text, key = "attribute", entity_text
    entity = _ENTITY.get(_unquote(entity_text))
    if entity is None:
        raise invalid(f"Invalid entity type '{_unquote(entity_text)}'. Valid values are {IDENTIFIERS}")
    key = _unquote(key)
    if entity == "attribute" and key not in valid_attributes:
        raise invalid(f"Invalid attribute key '{key}' specified. Valid keys are '{set(valid_attributes)}'")
    if entity == "dataset":
        raise invalid(
            "Searching by dataset (dataset.name, dataset.digest, dataset.context) is not supported."
        )
    return entity, _ALIASES.get(key, key) if entity == "attribute" else key


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind is None:
            continue
        value = m.group(kind)
        if kind == "ident" and value.upper() in ("AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"):
            kind = "keyword"
        out.append((kind, value))
    return out


def parse_filter(text: str | None, api: Entities = RUNS) -> list[Condition]:
    """MLflow's filter string -> the store's conditions."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    clauses: list[list[tuple[str, str]]] = [[]]
    for tok in tokens:
        if tok[0] == "keyword" and tok[1].upper() == "AND":
            clauses.append([])
        else:
            clauses[-1].append(tok)
    bad = [tok[1] for clause in clauses for tok in clause if tok[0] == "keyword" and tok[1].upper() == "OR"]
    if bad:
        raise invalid(f"Invalid clause(s) in filter string: {', '.join(repr(b) for b in bad)}")
    return [_condition(clause, api) for clause in clauses]


def _condition(clause: list[tuple[str, str]], api: Entities) -> Condition:
    words = [v.upper() for _, v in clause]
    if len(clause) < 2 or clause[0][0] != "ident":
        shown = ", ".join(repr(v) for _, v in clause) or "''"
        raise invalid(f"Invalid clause(s) in filter string: {shown}")
    rest = words[1:]
    if rest in (["IS", "NULL"], ["IS", "NOT", "NULL"]):
        entity, key = identifier(clause[0][1], api.attributes)
        op = " ".join(rest)
        if entity not in ("tag", "param"):
            kind = {"metric": "metric", "attribute": "attribute"}.get(entity, entity)
            raise invalid(
                f"IS NULL / IS NOT NULL is only supported for tags and params, not for '{kind}' '{key}'"
            )
        return Condition(entity, key, op)
    if len(clause) == 4 and rest[:2] == ["NOT", "IN"]:
        op, value_tok = "NOT IN", clause[3]
    elif len(clause) == 3 and clause[1][0] in ("op", "keyword"):
        op, value_tok = clause[1][1].upper(), clause[2]
    else:
        raise invalid(f"Invalid clause(s) in filter string: {', '.join(repr(v) for _, v in clause)}")
    entity, key = identifier(clause[0][1], api.attributes)
    if entity not in api.entity_types:
        raise invalid(f"Invalid token type: {entity}")
    value = _value(entity, key, value_tok, api)
    allowed = _allowed_ops(entity, key, api)
    if op not in allowed:
        raise invalid(f"Invalid comparator '{op}' not one of '{allowed}'")
    return Condition(entity, key, op, value)


def _allowed_ops(entity: str, key: str, api: Entities) -> set[str]:
    if entity == "metric" or (entity == "attribute" and key in api.numeric):
        return _NUMERIC_OPS
    if entity == "attribute":
        return _STRING_ATTRIBUTE_OPS if api is RUNS or key in api.list_keys else {"!=", "=", "LIKE", "ILIKE"}
    return _STRING_OPS


def _value(entity: str, key: str, token: tuple[str, str], api: Entities) -> float | str | tuple[str, ...]:
    kind, text = token
    if entity == "metric":
        if kind != "number":
            raise invalid(f"Expected numeric value type for metric. Found {text}")
        return float(text)
    if entity in ("param", "tag"):
        if kind not in ("string", "dquoted"):
            what = "parameter" if entity == "param" else "tag"
            raise invalid(f"Expected a quoted string value for {what} (e.g. 'my-value'). Got value {text}")
        return _string(text)
    if key in api.numeric:
        if kind != "number":
            raise invalid(f"Expected numeric value type for numeric attribute: {key}. Found {text}")
        return float(text)
    if kind in ("string", "dquoted"):
        return _string(text)
    if kind == "list":
        if key not in api.list_keys:
            raise invalid(
                f"Only {sorted(api.list_keys)} attributes support comparison with a list of quoted string values."
            )
        items = [m.group(0) for m in re.finditer(r"'(?:[^']|'')*'|\"[^\"]*\"|[^,\s()]+", text[1:-1])]
        if not items or any(i[0] not in "'\"" for i in items):
            raise invalid(
                "While parsing a list in the query, expected a non-empty list of string values, "
                "but got ill-formed list."
            )
        return tuple(_string(i) for i in items)
    raise invalid(f"Expected a quoted string value for attributes. Got value {text}")


def _string(text: str) -> str:
    return text[1:-1].replace("''", "'") if text.startswith("'") else text[1:-1]


def parse_order_by(clauses: list[str], api: Entities = RUNS) -> list[OrderKey]:
    """MLflow's order_by list -> the store's order keys (no key twice)."""
    keys: list[OrderKey] = []
    for clause in clauses:
        try:  # MLflow's own reading: backquotes act as double quotes
            joined = shlex.split(clause.replace("`", '"'))
        except ValueError:
            joined = []
        if not joined or len(joined) > 2:
            raise invalid(f"Invalid order_by clause '{clause}'. Could not be parsed.")
        ascending = True
        if len(joined) == 2:
            direction = joined[1].lower()
            if direction not in ("asc", "desc"):
                raise invalid(f"Invalid ordering key in order_by clause '{clause}'.")
            ascending = direction == "asc"
        entity, key = identifier(joined[0], api.orderable)
        if entity not in api.entity_types or entity == "dataset":
            raise invalid(f"Invalid order_by entity: {entity}")
        if any(k.entity == entity and k.key == key for k in keys):
            raise invalid(f"`order_by` contains duplicate fields: {clauses}")
        keys.append(OrderKey(entity, key, ascending))
    return keys


# -- handlers ------------------------------------------------------------------------------------------
SEARCH_MAX_RESULTS = 50_000
_STAGES: dict[str | int, tuple[str, ...]] = {
    "ACTIVE_ONLY": ("active",),
    "DELETED_ONLY": ("deleted",),
    "ALL": ("active", "deleted"),
    1: ("active",),
    2: ("deleted",),
    3: ("active", "deleted"),
}


class SearchRuns(Body):
    experiment_ids: list[str] = []
    filter: str | None = None
    run_view_type: str | int | None = None
    max_results: int | None = None
    order_by: list[str] = []
    page_token: str | None = None


class SearchExperiments(Body):
    max_results: int | None = None
    page_token: str | None = None
    filter: str | None = None
    order_by: list[str] = []
    view_type: str | int | None = None

    @field_validator("order_by", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """A GET with one order_by parameter reaches the handler as a string."""
        return [value] if isinstance(value, str) else value


def _stages(view: str | int | None) -> tuple[str, ...]:
    if view is None or view == "":
        return ("active",)
    key = int(view) if isinstance(view, str) and view.isdigit() else view
    if key not in _STAGES:
        raise invalid(f"Invalid view type {view!r}; use ACTIVE_ONLY, DELETED_ONLY or ALL.")
    return _STAGES[key]


def _default_experiment_id(ctx: MlflowContext) -> str | None:
    """runyard's id of the experiment MLflow calls "0" (None while it does not exist)."""
    try:
        return ctx.store.get_experiment(DEFAULT_EXPERIMENT).id
    except NotFoundError:
        return None


def _store_experiment_ids(ctx: MlflowContext, ids: list[str]) -> tuple[str, ...]:
    """MLflow's experiment ids as runyard's ("0" is "Default"); unknown ids match nothing, as in MLflow."""
    out = [i for i in ids if i != "0"]
    if "0" in ids:
        default = _default_experiment_id(ctx)
        if default is not None:
            out.append(default)
    return tuple(dict.fromkeys(out))


def _family(ctx: MlflowContext) -> tuple[str, ...] | None:
    """A job's run token searches its own run and the runs under it only."""
    run_id = ctx.caller.run_id
    if ctx.caller.scope != "run" or run_id is None:
        return None
    return (run_id, *(r.run_id for r in ctx.store.list_descendants(run_id, True)))


@route("POST", "runs/search")
def search_runs(ctx: MlflowContext, body: SearchRuns) -> dict[str, Any]:
    ctx.caller.require("read")
    limit = 1000 if body.max_results is None else body.max_results
    if limit > SEARCH_MAX_RESULTS:
        raise invalid(
            f"Invalid value {limit} for parameter 'max_results' supplied:  Hint: Value was of type 'int'. "
            "See the API docs for more information about request parameters."
        )
    if limit < 1:
        raise invalid(
            f"Invalid value {limit} for parameter 'max_results' supplied. It must be a positive integer"
        )
    query = MlflowRunQuery(
        experiment_ids=_store_experiment_ids(ctx, body.experiment_ids),
        conditions=tuple(parse_filter(body.filter, RUNS)),
        order_by=tuple(parse_order_by(body.order_by, RUNS)),
        lifecycle_stages=_stages(body.run_view_type),
        offset=page_offset(body.page_token),
        limit=limit,
        run_ids=_family(ctx),
        statuses=tuple(TO_MLFLOW.items()),
        artifact_root=ctx.artifact_uri("runs"),
    )
    records, more = ctx.store.search_mlflow_runs(query)
    out: dict[str, Any] = {}
    if records:
        out["runs"] = runs_json(ctx, records)
    if more:
        out["next_page_token"] = page_token(query.offset + limit)
    return out


def _search_experiments(ctx: MlflowContext, body: SearchExperiments) -> dict[str, Any]:
    ctx.caller.require("read")
    limit = 1000 if body.max_results is None else body.max_results
    if limit < 1 or limit > SEARCH_MAX_RESULTS:
        bound = "a positive integer" if limit < 1 else f"at most {SEARCH_MAX_RESULTS}"
        raise invalid(f"Invalid value {limit} for parameter 'max_results' supplied. It must be {bound}")
    conditions = parse_filter(body.filter, EXPERIMENTS)
    if any(c.key == "experiment_id" for c in conditions):
        default = _default_experiment_id(ctx) or "0"

        def ours(v: Any) -> Any:
            return tuple(ours(x) for x in v) if isinstance(v, tuple) else (default if v == "0" else v)

        conditions = [
            Condition(c.entity, c.key, c.op, ours(c.value)) if c.key == "experiment_id" else c
            for c in conditions
        ]
    query = MlflowExperimentQuery(
        conditions=tuple(conditions),
        order_by=tuple(parse_order_by(body.order_by, EXPERIMENTS)),
        lifecycle_stages=_stages(body.view_type),
        offset=page_offset(body.page_token),
        limit=limit,
    )
    found, more = ctx.store.search_mlflow_experiments(query)
    out: dict[str, Any] = {}
    if found:
        out["experiments"] = experiments_json(ctx, found)
    if more:
        out["next_page_token"] = page_token(query.offset + limit)
    return out


route("POST", "experiments/search")(_search_experiments)
route("GET", "experiments/search")(_search_experiments)

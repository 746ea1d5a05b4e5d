"""MLflow's filter and order grammar for `logged-models/search`, applied to the models of the searched
experiments in Python, as MLflow's own stores do for logged models: an experiment holds a handful of
models (one per fit), not the millions of rows that runs search has to filter in SQL.

    name = 'model' AND metrics.acc > 0.9 AND tags.team LIKE 'r%' AND status IN ('READY', 'PENDING')

Attributes: name, model_id, model_type, status (READY, PENDING, FAILED), source_run_id,
creation_timestamp / creation_time, last_updated_timestamp / last_updated_time (ms). Metrics can be
restricted to datasets (name, optionally digest). A missing value never matches, and sorts last.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

from runyard.mlflow_api.convert import ms
from runyard.mlflow_api.errors import invalid
from runyard.store.sql_mlflow_models import LoggedModelRecord


class Order(Protocol):
    field_name: str
    ascending: bool
    dataset_name: str | None
    dataset_digest: str | None


_CLAUSE = re.compile(
    r"""^\s*(?:(?P<kind>metrics?|params?|tags?|attributes?)\.)?(?P<key>`[^`]+`|"[^"]+"|[\w.\-]+)\s*
    (?P<op>!=|>=|<=|=|>|<|NOT\s+IN|IN|NOT\s+ILIKE|ILIKE|NOT\s+LIKE|LIKE)\s*(?P<value>.+?)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"""\s+AND\s+(?=(?:[^'"]*['"][^'"]*['"])*[^'"]*$)""", re.IGNORECASE)
ATTRIBUTES = {
    "name": "name",
    "model_id": "model_id",
    "model_type": "model_type",
    "status": "status",
    "source_run_id": "source_run_id",
    "creation_timestamp": "created",
    "creation_time": "created",
    "last_updated_timestamp": "updated",
    "last_updated_time": "updated",
}


def parse_filter(text: str | None) -> list[tuple[str, str, str, Any]]:
    """`name = 'model' AND metrics.acc > 0.9` -> [(kind, key, op, value)]; MLflow's error for what it
    cannot read."""
    if not text or not text.strip():
        return []
    clauses = []
    for part in _AND.split(text.strip()):
        match = _CLAUSE.match(part)
        if match is None:
            raise invalid(f"Invalid filter '{text}'. Could not be parsed at '{part.strip()}'.")
        kind = (match["kind"] or "attributes").lower().rstrip("s")
        key = match["key"].strip('`"')
        op = " ".join(match["op"].upper().split())
        if kind == "attribute" and key not in ATTRIBUTES:
            raise invalid(f"Invalid logged model search key '{key}'")
        clauses.append((kind, key, op, _literal(match["value"], text)))
    return clauses


def _literal(raw: str, text: str) -> Any:
    raw = raw.strip()
    if raw.startswith("("):
        items = [i.strip() for i in raw.strip("()").split(",") if i.strip()]
        return [_literal(i, text) for i in items]
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    try:
        return float(raw)
    except ValueError:
        raise invalid(f"Invalid filter '{text}': expected a quoted string or a number, got {raw}.") from None


def _lhs(model: LoggedModelRecord, kind: str, key: str, datasets: list[dict[str, Any]]) -> Any:
    if kind == "metric":
        values = [
            m["value"]
            for m in model.metrics
            if m.get("key") == key and (not datasets or any(_on_dataset(m, d) for d in datasets))
        ]
        return float(values[-1]) if values else None  # "NaN" / "Infinity" are stored as strings
    if kind == "param":
        return model.params.get(key)
    if kind == "tag":
        return model.tags.get(key)
    field = ATTRIBUTES[key]
    if field == "created":
        return ms(model.created_time)
    if field == "updated":
        return ms(model.last_updated_time)
    if field == "status":
        return model.status  # READY, PENDING, FAILED: the names MLflow's filters use
    return getattr(model, field) or ""


def _on_dataset(metric: Mapping[str, Any], dataset: Mapping[str, Any]) -> bool:
    return metric.get("dataset_name") == dataset["dataset_name"] and (
        not dataset.get("dataset_digest") or metric.get("dataset_digest") == dataset["dataset_digest"]
    )


def matches(
    model: LoggedModelRecord, clause: tuple[str, str, str, Any], datasets: list[dict[str, Any]]
) -> bool:
    kind, key, op, value = clause
    lhs = _lhs(model, kind, key, datasets)
    if lhs is None:
        return False
    if isinstance(value, float) and not isinstance(lhs, (int, float)):
        try:
            lhs = float(lhs)
        except ValueError:
            return False
    if op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
        pattern = "^" + re.escape(str(value)).replace("%", ".*").replace("_", ".") + "$"
        found = re.match(pattern, str(lhs), re.IGNORECASE if "ILIKE" in op else 0) is not None
        return found != op.startswith("NOT")
    if op in ("IN", "NOT IN"):
        return (lhs in value) != (op == "NOT IN")
    compare = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }[op]
    try:
        return bool(compare(lhs, value))
    except TypeError:
        return False


def order_value(model: LoggedModelRecord, order: Order) -> tuple[int, Any]:
    kind, _, key = order.field_name.partition(".")
    if not key:
        kind, key = "attributes", kind
    kind = kind.lower().rstrip("s")
    if kind == "attribute" and key not in ATTRIBUTES:
        raise invalid(f"Invalid order by key '{order.field_name}'")
    datasets = (
        [{"dataset_name": order.dataset_name, "dataset_digest": order.dataset_digest}]
        if order.dataset_name
        else []
    )
    value = _lhs(model, kind, key, datasets)
    # missing values sort last whichever the direction; sort keys stay comparable
    missing = value is None
    if missing:
        return (1 if order.ascending else -1, 0)
    return (0, value if isinstance(value, (int, float)) else str(value))


def page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return max(0, int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]))
    except (ValueError, KeyError, TypeError):
        raise invalid(
            f"Invalid page token {token[:40]!r}; pass the next_page_token of an earlier search."
        ) from None


def page_token(offset: int) -> str:
    """The opaque token of the page that starts at `offset` (page_offset reads it back)."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()

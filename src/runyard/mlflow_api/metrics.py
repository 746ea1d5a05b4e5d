"""metrics/get-history: a run's values of one metric as MLflow's client reads them (paged with
max_results/page_token as MLflow's server pages them; NaN and ±inf as logged; timestamps in ms)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from runyard.mlflow_api.convert import ms, run_for_read
from runyard.mlflow_api.dispatch import MlflowContext, route
from runyard.mlflow_api.errors import invalid
from runyard.store.records import MlflowMetric


# -- page tokens (opaque to clients; MLflow's own are an offset too) ---------------------------------------
def page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Invalid page token, could not base64-decode") from None
    try:
        parsed = json.loads(decoded)
    except ValueError:
        raise invalid(f"Invalid page token, decoded value={decoded!r}") from None
    offset = parsed.get("offset") if isinstance(parsed, dict) else None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid(f"Invalid page token, parsed value={parsed}")
    return offset


def page_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


class GetHistory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run_id: str | None = None
    run_uuid: str | None = None
    metric_key: str
    max_results: int | None = None
    page_token: str | None = None


def metric_json(m: MlflowMetric) -> dict[str, Any]:
    return {"key": m.key, "value": m.value, "timestamp": ms(m.timestamp), "step": m.step}


@route("GET", "metrics/get-history")
def get_history(ctx: MlflowContext, body: GetHistory) -> dict[str, Any]:
    record = run_for_read(ctx, body.run_id or body.run_uuid)
    if body.max_results is not None and body.max_results <= 0:
        raise invalid(
            f"Invalid value {body.max_results} for parameter 'max_results' supplied. "
            "It must be a positive integer."
        )
    offset = page_offset(body.page_token)
    found, more = ctx.store.mlflow_metric_history(record.run_id, body.metric_key, offset, body.max_results)
    out: dict[str, Any] = {}
    if found:
        out["metrics"] = [metric_json(m) for m in found]
    if more and body.max_results is not None:
        out["next_page_token"] = page_token(offset + body.max_results)
    return out

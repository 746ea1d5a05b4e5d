"""metrics/get-history and get-history-bulk-interval: a run's values of one metric as MLflow's client
reads them (paged with max_results/page_token as MLflow's server pages them; NaN and ±inf as logged;
timestamps in ms), and the evenly spread samples MLflow's charts ask for."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import field_validator

from runyard.mlflow_api.convert import ms, run_for_read
from runyard.mlflow_api.dispatch import Body, MlflowContext, route
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


class GetHistory(Body):
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


#: MLflow's server limits for metrics/get-history-bulk-interval
MAX_RUNS_BULK, MAX_RESULTS_PER_RUN = 100, 2500
_API_DOCS = "See the API docs for more information about request parameters."


class BulkInterval(Body):
    run_ids: list[str]
    metric_key: str
    start_step: int | None = None
    end_step: int | None = None
    max_results: int | None = None

    @field_validator("run_ids", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """A GET with one run_ids parameter reaches the handler as a string."""
        return [value] if isinstance(value, str) else value


@route("GET", "metrics/get-history-bulk-interval")
def get_history_bulk_interval(ctx: MlflowContext, body: BulkInterval) -> dict[str, Any]:
    """Up to max_results values per run, spread over each run's history (what MLflow's charts read)."""
    if len(body.run_ids) > MAX_RUNS_BULK:
        raise invalid(
            f"GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS_BULK} run_ids. "
            f"Received {len(body.run_ids)} run_ids. {_API_DOCS}"
        )
    limit = MAX_RESULTS_PER_RUN if body.max_results is None else body.max_results
    if not 1 <= limit <= MAX_RESULTS_PER_RUN:
        raise invalid(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}. {_API_DOCS}")
    steps = None
    if body.start_step is not None and body.end_step is not None:
        if body.start_step > body.end_step:
            raise invalid(
                "end_step must be greater than start_step. "
                f"Found start_step={body.start_step} and end_step={body.end_step}."
            )
        steps = (body.start_step, body.end_step)
    elif body.start_step is not None or body.end_step is not None:
        raise invalid("If either start step or end step are specified, both must be specified.")
    out: list[dict[str, Any]] = []
    for run_id in sorted(set(body.run_ids)):
        record = run_for_read(ctx, run_id)
        for m in ctx.store.mlflow_metric_sample(record.run_id, body.metric_key, limit, steps):
            out.append({**metric_json(m), "run_id": record.run_id})
    return {"metrics": out} if out else {}

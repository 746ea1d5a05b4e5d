"""Studio pages: sign-in, experiments, the runs table, run comparison and compute (runs and datasets
add their own routes: run_pages.py, dataset_pages.py).

Page state lives in the URL (filters, columns, sort, page), so every view can be bookmarked and
shared, works with the keyboard through plain links and forms, and the live refresh re-renders
exactly what the user is looking at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from runyard.config import local_slots
from runyard.core.compute_slots import slots_of
from runyard.core.workspace import Workspace
from runyard.engine.service import service_info
from runyard.errors import InvalidInputError
from runyard.server.auth import Principal
from runyard.server.errors import HTTPError
from runyard.status import ACTIVE_STATUSES, RunStatus
from runyard.store import ArtifactStore, SqlStore
from runyard.store.records import METRIC_AGGREGATES, MetricColumn, RunQuery
from runyard.studio.auth import (
    COOKIE,
    StudioForbidden,
    check_token,
    require_same_origin,
    safe_next,
    studio_principal,
)
from runyard.studio.dataset_pages import add_dataset_routes
from runyard.studio.run_pages import add_run_routes

PAGE_SIZE = 50
MAX_COLUMNS = 12
ON_COMPUTE = sorted(
    ACTIVE_STATUSES - {RunStatus.NOT_STARTED}
)  # a NotStarted step waits for inputs, not compute


def query_url(path: str, params: Sequence[tuple[str, str]], **changes: Any) -> str:
    """`path` with `params`, where each keyword replaces (None: removes) that parameter."""
    kept = [(k, v) for k, v in params if k not in changes]
    for key, value in changes.items():
        if isinstance(value, list):
            kept.extend((key, str(v)) for v in value)
        elif value is not None:
            kept.append((key, str(value)))
    return f"{path}?{urlencode(kept)}" if kept else path


def raw_path(request: Request) -> str:
    """The path as the browser sent it (still percent-encoded), so links built from it lead back here
    even when a name holds a '%' or a '/'."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if raw else request.url.path


def parse_columns(raw: list[str]) -> tuple[MetricColumn, ...]:
    columns: list[MetricColumn] = []
    for item in raw[:MAX_COLUMNS]:
        agg, sep, name = item.partition(":")
        if not sep or agg not in METRIC_AGGREGATES or not name:
            raise InvalidInputError(
                f"Column {item!r} is not AGG:METRIC with AGG one of {', '.join(METRIC_AGGREGATES)} (e.g. last:loss)."
            )
        column = MetricColumn(name, agg)
        if column not in columns:
            columns.append(column)
    return tuple(columns)


def studio_page_router(
    workspace: Workspace, store: SqlStore, artifacts: ArtifactStore, templates: Jinja2Templates, auth: bool
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    principal = studio_principal(store, auth)

    def render(
        request: Request, name: str, who: Principal, status_code: int = 200, **context: Any
    ) -> Response:
        context.update(principal=who)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    @router.get("/")
    def home() -> Response:
        return RedirectResponse("/experiments", status_code=303)

    @router.get("/login")
    def login_form(request: Request, next: str | None = None) -> Response:
        if not auth:
            return RedirectResponse(safe_next(next), status_code=303)
        return templates.TemplateResponse(request, "login.html", {"next": safe_next(next), "error": None})

    @router.post("/login")
    def login(request: Request, token: str = Form(""), next: str = Form("/experiments")) -> Response:
        require_same_origin(request)
        target = safe_next(next)
        try:
            check_token(store, token)
        except (HTTPError, StudioForbidden) as exc:
            message = (
                exc.message
                if isinstance(exc, StudioForbidden)
                else (
                    "That token is not valid: it may be mistyped, revoked or expired. Paste a token made with "
                    "`runyard token create`."
                )
            )
            return templates.TemplateResponse(
                request, "login.html", {"next": target, "error": message}, status_code=401
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", path="/")
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        require_same_origin(request)
        response = RedirectResponse("/login" if auth else "/experiments", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/experiments")
    def experiments(request: Request, who: Principal = Depends(principal)) -> Response:
        return render(request, "experiments.html", who, experiments=store.experiment_summaries())

    @router.get("/experiment-ids/{experiment_id}")
    def experiment_by_id(experiment_id: str, who: Principal = Depends(principal)) -> Response:
        """An experiment named by its id, where MLflow's links name it (studio.js follows MLflow's
        #/experiments/<id> here). MLflow's id "0" is its default experiment, runyard's "Default"."""
        name = "Default" if experiment_id == "0" else store.get_experiment_by_id(experiment_id).name
        return RedirectResponse(f"/experiments/{quote(name, safe='')}", status_code=303)

    @router.get("/experiments/{name:path}")
    def experiment(request: Request, name: str, who: Principal = Depends(principal)) -> Response:
        store.get_experiment(name)  # 404 page for an unknown name
        return runs_page(request, who, fixed_experiment=name)

    @router.get("/runs")
    def runs(request: Request, who: Principal = Depends(principal)) -> Response:
        return runs_page(request, who)

    def runs_page(request: Request, who: Principal, fixed_experiment: str | None = None) -> Response:
        q = request.query_params
        params = list(q.multi_items())
        columns = parse_columns(q.getlist("col"))
        tag_key, tag_value = None, None
        if q.get("tag"):
            key, sep, value = q["tag"].partition("=")
            tag_key, tag_value = key.strip(), (value.strip() if sep else None)
        try:
            page = min(max(int(q.get("page", "1")), 1), 10**9)
        except ValueError:
            raise InvalidInputError(f"page={q.get('page')!r} is not a page number.") from None
        experiment_name = fixed_experiment or q.get("experiment") or None
        query = RunQuery(
            experiment_name=experiment_name,
            status=q.get("status") or None,
            tag_key=tag_key or None,
            tag_value=tag_value,
            text=q.get("q") or None,
            top_level_only=q.get("children") != "1",
            columns=columns,
            sort=q.get("sort", "created"),
            descending=q.get("desc", "1") != "0",
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        result = store.search_runs(query)
        pages = max(math.ceil(result.total / PAGE_SIZE), 1)
        return render(
            request,
            "runs.html",
            who,
            title=f"Experiment {fixed_experiment}" if fixed_experiment else "All runs",
            fixed_experiment=fixed_experiment,
            query=query,
            result=result,
            page=page,
            pages=pages,
            params=params,
            url=lambda **changes: query_url(raw_path(request), params, **changes),
            page_path=raw_path(request),
            experiment_names=[e.name for e in store.list_experiments()],
            metric_names=store.list_metric_names(experiment_name),
            statuses=[s.value for s in RunStatus],
            aggregates=METRIC_AGGREGATES,
            tag_text=q.get("tag", ""),
        )

    @router.get("/compare")
    def compare(request: Request, who: Principal = Depends(principal)) -> Response:
        run_ids = list(dict.fromkeys(request.query_params.getlist("run")))[:20]
        if not run_ids:
            raise InvalidInputError("Select at least one run (tick its box in the runs table) to compare.")
        records = [store.get_run(r) for r in run_ids]
        summaries = store.get_metric_summaries(run_ids)
        names = sorted({s.name for s in summaries})
        table = {(s.run_id, s.name): s for s in summaries}
        charted = sorted({s.name for s in summaries if s.count > 1})  # single values read better in the table
        return render(
            request,
            "compare.html",
            who,
            runs=records,
            names=names,
            charted=charted,
            table=table,
            run_ids=run_ids,
        )

    @router.get("/compute")
    def compute(request: Request, who: Principal = Depends(principal)) -> Response:
        active = [r for r in store.list_runs(status=ON_COMPUTE) if r.run_type != "azureml.PipelineRun"]
        targets: dict[str, dict[str, Any]] = {
            "local": {"name": "local", "kind": "This machine's processes", "capacity": local_slots()}
        }
        for named in store.list_compute_targets():  # v1's AmlCompute / ComputeInstance, on local slots
            targets[named.name] = {
                "name": named.name,
                "kind": named.kind,
                "capacity": slots_of(named),
                "vm_size": named.vm_size,
                "min_nodes": named.min_nodes,
                "max_nodes": named.max_nodes,
            }
        for record in active:
            targets.setdefault(record.target, {"name": record.target, "kind": "unknown", "capacity": None})
        for target in targets.values():
            mine = [r for r in active if r.target == target["name"]]
            target["running"] = [r for r in mine if r.status != RunStatus.QUEUED]
            target["queued"] = sorted(
                (r for r in mine if r.status == RunStatus.QUEUED), key=lambda r: r.created_time
            )
        parents = {r.parent_id: store.get_run(r.parent_id) for r in active if r.parent_id is not None}
        return render(
            request,
            "compute.html",
            who,
            targets=list(targets.values()),
            parents=parents,
            scheduler=service_info(workspace),
        )

    add_run_routes(router, workspace, store, artifacts, principal, render)
    add_dataset_routes(router, workspace, store, principal, render)
    return router

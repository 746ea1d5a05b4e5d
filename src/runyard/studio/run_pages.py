"""Run pages: overview, metrics, outputs + logs, the pipeline graph, file downloads and clone.

A pipeline run's page is its graph with the selected step's own run page below it, so a step
reads exactly like any other run: same tabs, same log viewer, plus why it was or was not reused.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.core.workspace import Workspace
from runyard.engine.service import ensure_running
from runyard.environments.diagnosis import diagnosis_rows
from runyard.environments.display import environment_rows
from runyard.errors import InvalidInputError, NotFoundError
from runyard.pipeline.data import parameter_from_text
from runyard.server.auth import Principal
from runyard.store import ArtifactStore, RunRecord, SqlStore
from runyard.store.artifacts import clean_relpath
from runyard.studio import dataset_views, parallel_view, views
from runyard.studio.auth import StudioForbidden, require_write
from runyard.studio.graph_layout import layout

TABS = ("overview", "metrics", "files")


def add_run_routes(
    router: APIRouter,
    workspace: Workspace,
    store: SqlStore,
    artifacts: ArtifactStore,
    principal: Callable[..., Principal],
    render: Callable[..., Response],
) -> None:

    def run_context(run: RunRecord, tab: str, file: str | None) -> dict[str, Any]:
        """What one run's tabs need (used for plain runs and for the selected step of a pipeline)."""
        if tab not in TABS:
            raise InvalidInputError(f"tab={tab!r} is not one of {', '.join(TABS)}.")
        context: dict[str, Any] = {"run": run, "tab": tab}
        context["tags"] = store.get_tags(run.run_id)
        context["properties"] = store.get_properties(run.run_id)
        context["children"] = store.list_descendants(run.run_id, recursive=False)
        context["parent"] = store.get_run(run.parent_id) if run.parent_id else None
        context["reuse"] = run.data.get("reuse") if run.run_type == STEP_RUN_TYPE else None
        context["error"] = run.data.get("error")
        diagnosis = (context["error"] or {}).get("diagnosis")
        context["diagnosis"] = diagnosis_rows(diagnosis) if isinstance(diagnosis, dict) else None
        context["environment"] = environment_rows(run.data.get("environmentUsed"))
        if tab == "overview":  # lineage: a pipeline run shows what each of its steps read and wrote
            steps = (
                store.list_descendants(run.run_id, recursive=True)
                if run.run_type == PIPELINE_RUN_TYPE
                else []
            )
            context["data_uses"] = dataset_views.run_uses(store, run, steps)
            context["data_by_step"] = run.run_type == PIPELINE_RUN_TYPE
            if run.run_type == STEP_RUN_TYPE:  # a ParallelRunStep's progress card, live while it runs
                context.update(parallel_view.context(artifacts, run, context["parent"]))
        if tab == "metrics":
            context["metrics"] = views.metric_view(store, run.run_id)
        if tab == "files":
            tree = views.file_tree(artifacts, run.run_id)
            paths = [e.path for e in tree if not e.is_dir]
            selected = file if file in paths else views.default_log(paths)
            context.update(tree=tree, selected=selected, kind=views.file_kind(selected) if selected else None)
        return context

    @router.get("/runs/{run_id}")
    def run_page(
        request: Request,
        run_id: str,
        tab: str = "overview",
        file: str | None = None,
        step: str | None = None,
        who: Principal = Depends(principal),
    ) -> Response:
        run = store.get_run(run_id)
        if run.run_type != PIPELINE_RUN_TYPE:
            return render(request, "run.html", who, **run_context(run, tab, file), pipeline=None)
        steps = {c.display_name or c.run_id: c for c in store.list_descendants(run_id, recursive=False)}
        graph = run.data.get("graph") or {"steps": []}
        selected = None
        if step is not None:
            selected = next((s for s in steps.values() if s.run_id == step), None)
            if selected is None:
                raise NotFoundError(
                    f"Pipeline run {run_id} has no step run {step!r}; pick a step in the graph."
                )
        context = run_context(selected, tab, file) if selected else run_context(run, tab, file)
        step_spec = None
        if selected is not None:
            step_spec = next(
                (s for s in graph.get("steps", []) if s.get("name") == selected.display_name), None
            )
        return render(
            request,
            "run.html",
            who,
            **context,
            pipeline=run,
            graph=layout(graph),
            steps=steps,
            step=selected,
            step_spec=step_spec,
            parameters=run.data.get("parameters", {}),
            node_progress=parallel_view.node_progress(artifacts, graph, steps),
        )

    @router.get("/runs/{run_id}/files/{path:path}")
    def run_file(
        run_id: str, path: str, download: bool = False, who: Principal = Depends(principal)
    ) -> Response:
        store.get_run(run_id)
        rel = f"runs/{run_id}/{clean_relpath(path)}"
        local = artifacts.local_path(rel)
        if not local.is_file():
            raise NotFoundError(
                f"Run {run_id} has no file {path!r}; its Outputs + logs tab lists what it has."
            )
        # Files are what jobs wrote, so never let the browser run them on the studio's origin: text is
        # shown as plain text, raster images as images, and everything else (HTML, SVG, …) downloads.
        kind = views.file_kind(path)
        inline = not download and kind in ("text", "image")
        safety = {
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        }
        if inline:
            media = "text/plain; charset=utf-8" if kind == "text" else None
            return FileResponse(local, media_type=media, headers={**safety, "Content-Disposition": "inline"})
        return FileResponse(local, filename=os.path.basename(path), headers=safety)

    @router.get("/runs/{run_id}/download.zip")
    def run_zip(run_id: str, who: Principal = Depends(principal)) -> Response:
        store.get_run(run_id)
        handle, name = tempfile.mkstemp(suffix=".zip")
        os.close(handle)
        try:
            with zipfile.ZipFile(name, "w", zipfile.ZIP_DEFLATED) as archive:
                for rel in artifacts.list(f"runs/{run_id}"):
                    archive.write(artifacts.local_path(f"runs/{run_id}/{rel}"), f"{run_id}/{rel}")
        except BaseException:
            os.unlink(name)
            raise
        return FileResponse(
            name,
            media_type="application/zip",
            filename=f"{run_id}.zip",
            background=BackgroundTask(os.unlink, name),
        )

    @router.get("/runs/{run_id}/clone")
    def clone_form(request: Request, run_id: str, who: Principal = Depends(principal)) -> Response:
        run = _pipeline(store, run_id)
        try:
            may_run_here(request, who, run)
            blocked = None
        except StudioForbidden as exc:  # say why before the user fills the form in
            blocked = exc.message
        return render(
            request,
            "clone.html",
            who,
            run=run,
            parameters=run.data.get("parameters", {}),
            error=None,
            blocked=blocked,
        )

    @router.post("/runs/{run_id}/clone")
    async def clone_submit(request: Request, run_id: str, who: Principal = Depends(principal)) -> Response:
        require_write(who, request)
        run = await run_in_threadpool(_pipeline, store, run_id)
        may_run_here(request, who, run)
        defaults: dict[str, Any] = run.data.get("parameters", {})
        form = await request.form()
        values, problems = {}, []
        for name, default in defaults.items():
            raw = str(form.get(f"param.{name}", "")).strip()
            try:
                values[name] = parameter_from_text(raw, default) if raw != "" else default
            except InvalidInputError as exc:
                problems.append(f"{name}: {exc}")
        experiment = str(form.get("experiment") or run.experiment_name).strip()
        if problems:
            return render(
                request,
                "clone.html",
                who,
                run=run,
                parameters=defaults,
                error="; ".join(problems),
                values=form,
                status_code=400,
            )
        from runyard.pipeline.pipeline import submitted_as
        from runyard.pipeline.runs import PipelineRun

        def submit() -> str:  # database writes, snapshot hashing, maybe starting the scheduler
            old = PipelineRun.get(workspace, run_id)
            if who.auth_off:  # no token to check: this compute host's own scheduler takes {"auth": "off"}
                ensure_running(workspace, accept_unauthenticated=True)
            with submitted_as(who.stamp()):  # the scheduler checks this token's compute grant again
                return old.clone().submit(experiment, pipeline_parameters=values, show_output=False).id

        new_id = await run_in_threadpool(submit)
        return RedirectResponse(f"/runs/{quote(new_id, safe='')}", status_code=303)


def may_run_here(request: Request, who: Principal, run: RunRecord) -> None:
    """A clone starts code on this machine: only when the server was started as compute, and only for
    a principal that holds compute for every step's target (docs/security.md)."""
    if not getattr(request.app.state, "host_is_compute", False):
        raise StudioForbidden(
            "This server does not run pipelines: it was started without --compute, so nothing submitted "
            "over HTTP may start code on its machine. Start it with `runyard server --compute` (or "
            "`runyard up`) if this machine is meant to be compute, or submit from a machine that is."
        )
    steps = (run.data.get("graph") or {}).get("steps") or []
    targets = sorted({str(s.get("compute_target") or "local") for s in steps if isinstance(s, dict)})
    missing = [t for t in targets if not who.may_run_on(t)]
    if missing:
        raise StudioForbidden(
            f"Your token may not run code on {', '.join(missing)} (its compute: "
            f"{', '.join(who.compute) or 'none'}); reading, writing and admin scopes do not run code. "
            f"Sign in with a token made by `runyard token create --scope write "
            f"{' '.join('--compute ' + t for t in missing)}`."
        )


def _pipeline(store: SqlStore, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    if run.run_type != PIPELINE_RUN_TYPE:
        raise InvalidInputError(f"Run {run_id} is not a pipeline run; only pipeline runs can be cloned here.")
    return run

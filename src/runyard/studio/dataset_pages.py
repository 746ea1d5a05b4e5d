"""Studio pages for data: the Datasets list (with the workspace's datastores) and one dataset's page.

A dataset page is one version at a time (`?version=N`, the latest by default): its files a page at a
time (`&fpage=N`), a preview of the first rows of a tabular version, and the runs that produced and
read it. As everywhere in the studio, the state lives in the address, so any view can be bookmarked.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from runyard.core.workspace import Workspace
from runyard.errors import DatasetNotFound, InvalidInputError
from runyard.server.auth import Principal
from runyard.store import SqlStore
from runyard.studio import dataset_views as dv


def _number(name: str, raw: str | None, default: int | None) -> int | None:
    if raw is None or raw == "" or raw == "latest":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"{name}={raw!r} is not a whole number.") from None
    if not 1 <= value <= 10**9:
        raise InvalidInputError(f"{name}={raw!r}: use a number from 1 up.")
    return value


def add_dataset_routes(
    router: APIRouter,
    workspace: Workspace,
    store: SqlStore,
    principal: Callable[..., Principal],
    render: Callable[..., Response],
) -> None:

    @router.get("/datasets")
    def datasets(request: Request, q: str | None = None, who: Principal = Depends(principal)) -> Response:
        return render(
            request,
            "datasets.html",
            who,
            datasets=dv.dataset_summaries(store, q),
            q=q or "",
            datastores=dv.datastore_rows(store),
        )

    @router.get("/datasets/{name}")
    def dataset(
        request: Request,
        name: str,
        version: str | None = None,
        fpage: str | None = None,
        who: Principal = Depends(principal),
    ) -> Response:
        versions = store.list_datasets(name=name)  # newest first
        if not versions:
            raise DatasetNotFound(
                f"No dataset named {name!r} in this workspace; the Datasets page lists those there are."
            )
        wanted = _number("version", version, versions[0].version)
        selected = next((v for v in versions if v.version == wanted), None)
        if selected is None:
            raise DatasetNotFound(
                f"Dataset {name!r} has no version {wanted}; its versions are "
                f"{', '.join(str(v.version) for v in reversed(versions))}."
            )
        files = dv.file_page(selected, _number("fpage", fpage, 1) or 1)
        base = f"/datasets/{quote(name, safe='')}"
        return render(
            request,
            "dataset.html",
            who,
            title=f"Dataset {name}",
            dataset_name=name,
            base=base,
            versions=versions,
            selected=selected,
            files=files,
            files_url=lambda page: f"{base}?version={selected.version}&fpage={page}",
            preview=dv.preview(workspace, selected),
            lineage=dv.dataset_lineage(store, versions),
            sources=dv.definition_sources(selected.definition),
            format_label=dv.format_label(selected.definition),
        )

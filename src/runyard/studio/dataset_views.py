"""What the Datasets pages and a run's "Inputs and outputs" show, worked out from store records.

Kept apart from the routes so templates stay plain markup and every rule (what a file page holds, how a
lineage row is labelled, which parts of a datastore's URL are safe to show) lives in one place. The
preview of a tabular dataset is the one part that reads data: it goes through the data layer
(Dataset.get_by_id(...).take(n)), so it reads exactly the recorded files of that version, and any failure
to read becomes a message on the page rather than a failed page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runyard.core.workspace import Workspace
from runyard.errors import DatasetNotFound, RunNotFound, RunyardError
from runyard.store import RunRecord, SqlStore
from runyard.store.data_rules import BUILTIN_DATASTORES
from runyard.store.records import DatasetRecord, DatasetUse, DatastoreRecord
from runyard.studio.views import fmt_value

FILES_PAGE = 100  # files of one version listed per page
PREVIEW_ROWS = 20
PREVIEW_CELL = 200  # characters of one preview cell
USES_SHOWN = 500  # lineage rows a dataset page lists (newest first)
BUILTIN_DATASTORE = "workspaceblobstore"  # the default when none was chosen


def total_size(record: DatasetRecord) -> int:
    return sum(int(f.get("size") or 0) for f in record.files)


def file_where(item: dict[str, Any]) -> str:
    """A recorded file as a person reads it: 'datastore:path', or the URL / local path itself."""
    datastore = str(item.get("datastore") or "")
    return f"{datastore}:{item.get('path')}" if datastore else str(item.get("path"))


def hash_prefix(value: str | None, length: int = 12) -> str:
    return (value or "")[:length]


@dataclass(frozen=True)
class DatasetSummary:
    record: DatasetRecord  # the latest version
    file_count: int
    size: int


def dataset_summaries(store: SqlStore, text: str | None = None) -> list[DatasetSummary]:
    """The latest version of every dataset whose name contains `text` (any case), by name."""
    needle = (text or "").strip().lower()
    return [
        DatasetSummary(record, len(record.files), total_size(record))
        for record in store.list_datasets(latest=True)
        if needle in record.name.lower()
    ]


@dataclass(frozen=True)
class FilePage:
    files: list[dict[str, Any]]
    page: int
    pages: int
    total: int
    first: int  # 1-based position of files[0]


def file_page(record: DatasetRecord, page: int) -> FilePage:
    """One page of a version's recorded files (a version can hold 100k files: never list them all)."""
    total = len(record.files)
    pages = max(math.ceil(total / FILES_PAGE), 1)
    page = min(max(page, 1), pages)
    start = (page - 1) * FILES_PAGE
    return FilePage(record.files[start : start + FILES_PAGE], page, pages, total, start + 1)


@dataclass(frozen=True)
class Preview:
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    error: str | None = None


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = fmt_value(value)
    return text if len(text) <= PREVIEW_CELL else text[: PREVIEW_CELL - 1] + "…"


def preview(workspace: Workspace, record: DatasetRecord, rows: int = PREVIEW_ROWS) -> Preview | None:
    """The first `rows` rows of a tabular version, read through the data layer; None for a file dataset.

    Reading can fail for reasons that are no fault of the page: the files were deleted or changed (the
    version's recorded hashes no longer match), a remote store needs credentials this server does not
    have, or its backend is not installed. Those become `Preview(error=...)`, shown in place of the rows.
    """
    if record.kind != "tabular":
        return None
    from runyard.data.dataset import Dataset, TabularDataset

    try:
        dataset = Dataset.get_by_id(workspace, record.id)
        if not isinstance(dataset, TabularDataset):
            return None
        frame = dataset.take(rows).to_pandas_dataframe()
    except (RunyardError, OSError, ValueError, ImportError) as exc:  # pyarrow's errors are OSError/ValueError
        message = str(exc) if isinstance(exc, RunyardError) else f"{type(exc).__name__}: {exc}"
        return Preview(error=message)
    columns = [str(c) for c in frame.columns]
    types = [str(t) for t in frame.dtypes]
    values = frame.astype(object).where(frame.notna(), None)
    return Preview(columns, types, [[_cell(v) for v in row] for row in values.itertuples(index=False)])


def definition_sources(definition: dict[str, Any]) -> list[str]:
    """A definition's sources as text: 'datastore:path', a URL, or a local path."""
    shown = []
    for source in definition.get("sources") or []:
        if not isinstance(source, dict):
            continue
        if "datastore" in source:
            shown.append(f"{source.get('datastore')}:{source.get('path')}")
        else:
            shown.append(str(source.get("url") or source.get("local") or source))
    return shown


def format_label(definition: dict[str, Any]) -> str:
    fmt = definition.get("format")
    if not isinstance(fmt, dict):
        return "files"
    kind = str(fmt.get("type") or "")
    if kind == "delimited":
        return f"delimited (separator {fmt.get('separator', ',')!r})"
    return kind.replace("_", " ")


# -- lineage ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UseView:
    """One lineage row as shown: the run it belongs to and the registered version it names, if any."""

    use: DatasetUse
    run: RunRecord | None
    dataset: DatasetRecord | None

    @property
    def what(self) -> str:
        """For unregistered data: where it was read from or written to."""
        detail = self.use.detail
        if detail.get("datastore") is not None:
            return f"{detail.get('datastore')}:{detail.get('path') or ''}"
        if isinstance(detail.get("definition"), dict):
            sources = definition_sources(detail["definition"])
            return "unregistered dataset over " + (", ".join(sources) if sources else "no sources")
        if detail.get("dataset"):
            return f"dataset {detail.get('dataset')}"
        return "unregistered data"


def _runs(store: SqlStore, run_ids: list[str]) -> dict[str, RunRecord]:
    found: dict[str, RunRecord] = {}
    for run_id in dict.fromkeys(run_ids):
        try:
            found[run_id] = store.get_run(run_id)
        except RunNotFound:  # lineage outlives nothing today, but a missing run must not break a page
            continue
    return found


def _datasets(store: SqlStore, ids: list[str]) -> dict[str, DatasetRecord]:
    found: dict[str, DatasetRecord] = {}
    for dataset_id in dict.fromkeys(ids):
        try:
            found[dataset_id] = store.get_dataset_by_id(dataset_id)
        except DatasetNotFound:
            continue
    return found


def run_uses(store: SqlStore, run: RunRecord, descendants: list[RunRecord]) -> list[UseView]:
    """What `run` read and wrote, and for a pipeline run what each of its steps did: inputs first."""
    uses = [u for r in [run, *descendants] for u in store.list_dataset_uses(run_id=r.run_id)]
    runs = {r.run_id: r for r in [run, *descendants]}
    datasets = _datasets(store, [u.dataset_id for u in uses if u.dataset_id])
    views = [UseView(u, runs.get(u.run_id), datasets.get(u.dataset_id or "")) for u in uses]
    return sorted(views, key=lambda v: (v.use.direction != "input", v.use.created_time))


@dataclass
class VersionLineage:
    produced: list[UseView] = field(default_factory=list)  # "output" uses, and the run that registered it
    used: list[UseView] = field(default_factory=list)  # "input" uses


def dataset_lineage(store: SqlStore, versions: list[DatasetRecord]) -> dict[int, VersionLineage]:
    """Per version of one dataset: the runs that produced it and the runs that read it."""
    if not versions:
        return {}
    by_id = {v.id: v for v in versions}
    uses = store.list_dataset_uses(dataset_name=versions[0].name)[-USES_SHOWN:]
    runs = _runs(store, [u.run_id for u in uses] + [v.run_id for v in versions if v.run_id])
    lineage = {v.version: VersionLineage() for v in versions}
    for use in reversed(uses):  # newest first
        record = by_id.get(use.dataset_id or "")
        if record is None:
            continue
        item = UseView(use, runs.get(use.run_id), record)
        (
            lineage[record.version].produced if use.direction == "output" else lineage[record.version].used
        ).append(item)
    for version in versions:  # registered by a run (register_on_complete) without an "output" row
        if version.run_id and all(v.use.run_id != version.run_id for v in lineage[version.version].produced):
            registered = DatasetUse(version.run_id, "output", "registered", version.content_hash, version.id)
            lineage[version.version].produced.append(UseView(registered, runs.get(version.run_id), version))
    return lineage


# -- datastores ---------------------------------------------------------------------------------
def shown_url(url: str) -> str:
    """A datastore URL without anything that may be a credential: user:password@ and the query string
    (where SAS tokens travel). The store refuses such URLs already; this keeps the page safe regardless."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class DatastoreRow:
    name: str
    kind: str
    url: str
    default: bool


def datastore_rows(store: SqlStore) -> list[DatastoreRow]:
    """The built-in workspaceblobstore / workspacefilestore and every registered datastore: name, kind and URL, never secrets."""
    default = store.get_default_datastore_name() or BUILTIN_DATASTORE
    rows = [
        DatastoreRow(name, "built in", "the workspace's artifact folder", default == name)
        for name in BUILTIN_DATASTORES
    ]
    records: list[DatastoreRecord] = store.list_datastores()
    rows.extend(
        DatastoreRow(r.name, r.kind, shown_url(r.url), r.name.lower() == default.lower()) for r in records
    )
    return rows

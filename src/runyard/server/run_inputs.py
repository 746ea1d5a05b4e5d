"""Which datastore files a run token may read: the data its own run (or an ancestor) took as input.

A job on a server workspace reads a direct-mode dataset (`run.input_datasets['x'].to_pandas_dataframe()`)
through the server's artifact API with its run token. That token may read its own run family's files
(server/routes_artifacts.py), and also exactly the inputs recorded for it in the lineage table before
the job started: the files of a registered dataset version, the folder of a datastore path, or what an
unregistered dataset's sources can match. Nothing else on the datastore: other datasets stay private to
workspace tokens. Lineage rows are written by the submitter (write scope) or the scheduler, never
by the job itself for an input it did not have: a run token may only add rows for its own run, and
the rows it could add say nothing the submitter did not already allow (see docs/security.md).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from typing import Any

from runyard.errors import NotFoundError
from runyard.store import SqlStore
from runyard.store.records import DatasetUse

_GLOB = re.compile(r"[*?\[]")


def _under(path: str, root: str) -> bool:
    root = root.strip("/")
    return root == "" or path == root or path.startswith(root + "/")


def _glob_root(pattern: str) -> str:
    """The folder part of a glob before its first wildcard ('raw/2024/*.csv' -> 'raw/2024')."""
    match = _GLOB.search(pattern)
    if match is None:
        return pattern.strip("/")
    return posixpath.dirname(pattern[: match.start()].strip("/"))


def _covers(store: SqlStore, use: DatasetUse, datastore: str, path: str) -> bool:
    detail: dict[str, Any] = use.detail if isinstance(use.detail, dict) else {}
    if isinstance(detail.get("datastore"), str) and isinstance(detail.get("path"), str):
        return detail["datastore"].lower() == datastore and _under(path, detail["path"])
    if use.dataset_id:
        try:
            files = store.get_dataset_by_id(use.dataset_id).files
        except NotFoundError:
            return False
        return any(str(f.get("datastore", "")).lower() == datastore and f.get("path") == path for f in files)
    definition = detail.get("definition")
    sources = definition.get("sources", []) if isinstance(definition, dict) else []
    for source in sources:
        if not isinstance(source, dict) or str(source.get("datastore", "")).lower() != datastore:
            continue
        pattern = str(source.get("path", "")).strip("/")
        if fnmatch.fnmatchcase(path, pattern) or _under(path, _glob_root(pattern)):
            return True
    return False


def run_may_read_input(store: SqlStore, run_id: str, datastore: str, path: str) -> bool:
    """Is `datastore`/`path` (a file, or a folder being listed) an input of `run_id` or an ancestor?"""
    datastore = datastore.lower()
    current: str | None = run_id
    seen: set[str] = set()
    while current is not None and current not in seen:
        seen.add(current)
        for use in store.list_dataset_uses(run_id=current):
            if use.direction == "input" and _covers(store, use, datastore, path):
                return True
        try:
            current = store.get_run(current).parent_id
        except NotFoundError:
            return False
    return False

"""Which datastore files a run token may read: the data its own run (or an ancestor) took as input.

A job on a server workspace reads a direct-mode dataset (`run.input_datasets['x'].to_pandas_dataframe()`)
through the server's artifact API with its run token. That token may read its own run family's files
(server/routes_artifacts.py), and also exactly the inputs recorded for it in the lineage table before
the job started: the files of a registered dataset version, the folder of a datastore path, or the files
an unregistered dataset's globs match, with resolve.py's semantics ('raw/*.csv' is the CSV files of
raw/ and not of raw/private/; '**' crosses folders), plus the one listing of the glob's base folder that
resolving it needs. Nothing else on the datastore: other datasets stay private to
workspace tokens. Lineage rows are written by the submitter (write scope) or the scheduler, never
by the job itself for an input it did not have: a run token may only add rows for its own run, and
the rows it could add say nothing the submitter did not already allow (see docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runyard.data.definition import is_glob
from runyard.data.resolve import glob_base, glob_regex
from runyard.errors import NotFoundError
from runyard.store import SqlStore
from runyard.store.records import DatasetUse


def _under(path: str, root: str) -> bool:
    root = root.strip("/")
    return root == "" or path == root or path.startswith(root + "/")


def _glob_rule(pattern: str) -> Callable[[str], bool]:
    """What a dataset source may be read as: a glob reads exactly the files it matches, with resolve.py's
    semantics ('*' and '?' within one folder, '**' across folders), plus a listing of its base folder
    (the one listing resolve makes to expand it); a plain path reads the file or folder it names."""
    if not is_glob(pattern):
        return lambda path: _under(path, pattern)
    regex, base = glob_regex(pattern), glob_base(pattern)
    return lambda path: path == base or regex.match(path) is not None


def _rules(store: SqlStore, use: DatasetUse, datastore: str) -> list[Callable[[str], bool]]:
    detail: dict[str, Any] = use.detail if isinstance(use.detail, dict) else {}
    if isinstance(detail.get("datastore"), str) and isinstance(detail.get("path"), str):
        if detail["datastore"].lower() != datastore:
            return []
        root = str(detail["path"])
        return [lambda path: _under(path, root)]
    if use.dataset_id:
        try:
            files = store.get_dataset_by_id(use.dataset_id).files
        except NotFoundError:
            return []
        paths = {str(f.get("path")) for f in files if str(f.get("datastore", "")).lower() == datastore}
        return [paths.__contains__]
    definition = detail.get("definition")
    sources = definition.get("sources", []) if isinstance(definition, dict) else []
    return [
        _glob_rule(str(source.get("path", "")).strip("/"))
        for source in sources
        if isinstance(source, dict) and str(source.get("datastore", "")).lower() == datastore
    ]


def run_input_reader(store: SqlStore, run_id: str, datastore: str) -> Callable[[str], bool]:
    """A test for paths of `datastore`: is this file (or folder being listed) an input of `run_id` or one
    of its ancestors? Reads the lineage once, so a listing can filter many names with it."""
    datastore = datastore.lower()
    rules: list[Callable[[str], bool]] = []
    current: str | None = run_id
    seen: set[str] = set()
    while current is not None and current not in seen:
        seen.add(current)
        for use in store.list_dataset_uses(run_id=current):
            if use.direction == "input":
                rules.extend(_rules(store, use, datastore))
        try:
            current = store.get_run(current).parent_id
        except NotFoundError:
            break
    return lambda path: any(rule(path) for rule in rules)


def run_may_read_input(store: SqlStore, run_id: str, datastore: str, path: str) -> bool:
    """Is `datastore`/`path` (a file, or a folder being listed) an input of `run_id` or an ancestor?"""
    return run_input_reader(store, run_id, datastore)(path)

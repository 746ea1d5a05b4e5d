"""The metric half of the Run API: log, log_list, log_row, log_table, log_image, v1's schema metrics
(confusion matrix, accuracy table, predictions, residuals) and reading them back. Mixed into Run.

Values are checked here, at the user's call, so a mistake surfaces at the line that made it; they then
go to this process's metric spool (core/metrics.py, core/metric_spool.py) and never wait for the store.

run.log() has a fast path: once a (run, name) pair has been checked, its series id is cached on the Run,
and a float or an int (with or without an int step) is packed straight into the ring. Everything else
(the first value of a name, strings, bools, None, numpy scalars, other kinds) takes the checked path.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from runyard.core import metrics as m
from runyard.core.metric_spool import INT64_MAX, INT64_MIN
from runyard.errors import InvalidInputError, MetricValueError

if TYPE_CHECKING:
    from runyard.core.metric_spool import SpoolRing
    from runyard.core.run import Run
    from runyard.core.workspace import Workspace

#: A Run's series ids before its first checked log() (and after a flush): empty, so every name is checked.
_NO_SERIES: Mapping[str, int] = MappingProxyType({})
#: Finite floats are exactly those within ±_MAX_FLOAT (NaN compares false): no math call on the hot path.
_MAX_FLOAT = sys.float_info.max
_MIN_FLOAT = -_MAX_FLOAT

#: v1's schema metrics: method → (schema_type, schema_version) written when the value does not say.
SCHEMA_METRICS = {
    "log_confusion_matrix": ("confusion_matrix", "1.0.0"),
    "log_accuracy_table": ("accuracy_table", "1.0.1"),
    "log_predictions": ("predictions", "1.0.0"),
    "log_residuals": ("residuals", "1.0.0"),
}


def image_name(name: str, taken: Any) -> str:
    """v1's artifact name for a logged image: `<name>_<unixtime>.png` at the run's root. A second image of
    the same name within one second gets `_1`, `_2`, … instead of replacing the first."""
    stem = f"{name}_{int(time.time())}"
    candidate, n = f"{stem}.png", 0
    while taken(candidate):
        n += 1
        candidate = f"{stem}_{n}.png"
    return candidate


def schema_value(method: str, name: str, value: Any) -> dict[str, Any]:
    """A schema metric's JSON as a dict: v1 takes a dict or a JSON string with `data` in it."""
    where = f"run.{method}({name!r})"
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise MetricValueError(f"{where}: the value is not valid JSON ({exc}).") from None
    if not isinstance(value, Mapping) or "data" not in value:
        raise MetricValueError(
            f"{where}: pass a dict (or JSON string) like "
            '{"schema_type": ..., "schema_version": ..., "data": {...}}; got ' + f"{type(value).__name__}."
        )
    schema_type, version = SCHEMA_METRICS[method]
    out = {"schema_type": schema_type, "schema_version": version, **dict(value)}
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MetricValueError(
            f"{where}: the value must be plain JSON with finite numbers ({exc}); convert numpy arrays "
            "with .tolist()."
        ) from None
    return out


class RunLoggingMixin:
    workspace: Workspace
    #: name -> series id in this process's spool, for names already checked (run.log's fast path)
    _log_series: Mapping[str, int] = _NO_SERIES
    _log_ring: SpoolRing

    if TYPE_CHECKING:

        @property
        def id(self) -> str: ...

        def _check_writable(self, action: str) -> None: ...
        def _artifact(self, name: str) -> str: ...
        def upload_file(self, name: str, path_or_stream: Any, datastore_name: str | None = None) -> None: ...
        def get_children(
            self,
            recursive: bool = False,
            tags: Any = None,
            properties: Any = None,
            type: str | None = None,
            status: str | None = None,
            _rehydrate_runs: bool = True,
        ) -> Iterator[Run]: ...

    def _add(self, name: str, kind: str, fields: dict[str, Any], step: int | None = None) -> None:
        m.writer_for(self.workspace).add(self.id, name, kind, fields, step)

    def log(
        self, name: str, value: Any, description: str = "", step: int | None = None, **_mistyped: Any
    ) -> None:
        """Record a scalar; returns at once (it waits only when the spool is full, i.e. when values come
        faster than the store takes them). Repeated calls with one name build a series.

        (`**_mistyped` is not an option: it lets log() name a mistyped keyword itself, as the wrapper that
        runyard puts around Run's other methods does, without that wrapper's cost on every call.)"""
        if _mistyped:
            from runyard.compat import check_keywords

            check_keywords("Run.log", _mistyped, ["name", "value", "description", "step"])
        try:
            sid = self._log_series.get(name)
        except TypeError:  # an unhashable name: the checked path says what is wrong with it
            sid = None
        if sid is not None and (step is None or (type(step) is int and INT64_MIN <= step <= INT64_MAX)):
            kind = type(value)
            if kind is float or isinstance(value, float):  # numpy.float64 is a float too
                if _MIN_FLOAT <= value <= _MAX_FLOAT:
                    self._log_ring.put_float(sid, value, step)
                    return
            elif kind is int and INT64_MIN <= value <= INT64_MAX:
                self._log_ring.put_int(sid, value, step)
                return
        self._log_checked(name, value, step)

    def _log_checked(self, name: str, value: Any, step: Any) -> None:
        """log() for a name not checked yet, or a value the fast path does not take: every rule, then the
        spool; the (run, name) pair is remembered for the fast path."""
        m.check_name(name)
        fields = m.scalar_fields(name, value)
        m.check_step(name, step)
        self._check_writable("log to")
        writer = m.writer_for(self.workspace)
        sid = writer.series(self.id, name)
        ring = writer.ring
        if sid is None or ring is None:
            writer.add(self.id, name, "scalar", fields, step)
            return
        self._log_ring = ring
        self._log_series = writer.series_ids(self.id)
        if not writer.put_scalar(ring, sid, fields, step):
            writer.add(self.id, name, "scalar", fields, step)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        m.check_name(name)
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise InvalidInputError(
                f"run.log_list({name!r}): pass a list of numbers, got {type(value).__name__}."
            )
        items = [m.scalar_fields(name, v, where="run.log_list") for v in list(value)]
        self._check_writable("log to")
        for index, fields in enumerate(items):
            self._add(name, "list", fields, index)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        m.check_name(name)
        if not kwargs:
            raise InvalidInputError(f"run.log_row({name!r}): pass the row's columns as keyword arguments.")
        row = {k: m.row_value(name, v) for k, v in kwargs.items()}
        self._check_writable("log to")
        self._add(name, "row", {"value": None, "text": None, "payload": row})

    def log_table(self, name: str, value: Mapping[str, Any], description: str = "") -> None:
        m.check_name(name)
        if not isinstance(value, Mapping) or not value:
            raise InvalidInputError(f"run.log_table({name!r}): pass a dict of column name → list of values.")
        columns = {k: list(v) for k, v in value.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise InvalidInputError(
                f"run.log_table({name!r}): columns have different lengths {sorted(lengths)}; make them equal."
            )
        for index in range(lengths.pop()):
            self.log_row(name, **{k: v[index] for k, v in columns.items()})

    def log_image(self, name: str, path: Any = None, plot: Any = None, description: str = "") -> None:
        """Store a PNG (from `path`, or a matplotlib figure in `plot`) as `<name>_<unixtime>.png` at the
        run's root, as v1 names it, and a metric that points at it."""
        m.check_name(name)
        if (path is None) == (plot is None):
            raise InvalidInputError(f"run.log_image({name!r}): pass exactly one of path= or plot=.")
        self._check_writable("log to")
        artifact = image_name(name, lambda n: self.workspace.artifacts.exists(self._artifact(n)))
        if plot is not None:
            buffer = io.BytesIO()
            figure = plot.gcf() if hasattr(plot, "gcf") else plot
            figure.savefig(buffer, format="png")
            self.upload_file(artifact, io.BytesIO(buffer.getvalue()))
        else:
            self.upload_file(artifact, path)
        self._add(name, "image", {"value": None, "text": None, "payload": {"path": artifact}})

    def _log_schema(self, method: str, name: str, value: Any) -> None:
        m.check_name(name)
        payload = schema_value(method, name, value)
        self._check_writable("log to")
        self._add(name, "row", {"value": None, "text": None, "payload": payload})

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        """v1's confusion matrix: {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
        "data": {"class_labels": [...], "matrix": [[...]]}}; get_metrics returns that dict."""
        self._log_schema("log_confusion_matrix", name, value)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._log_schema("log_accuracy_table", name, value)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        self._log_schema("log_predictions", name, value)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        self._log_schema("log_residuals", name, value)

    def flush(self, timeout_seconds: int = 300) -> None:
        """Wait until every value this process logged is in the store (in a job: until its supervisor
        has stored them). complete() and get_metrics() flush first."""
        self._log_series = _NO_SERIES  # the next log() checks again whether the run may still be logged to
        m.writer_for(self.workspace).flush(timeout_seconds)

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        """Azure's shape: {name: value or list}; with recursive=True, {run_id: {...}} for the run and its descendants."""
        self.flush()
        if not recursive:
            return m.shape_metrics(self.workspace.store.get_metric_rows([self.id], name))
        runs: list[Any] = [
            self,
            *(r for r in self.get_children(recursive=True) if run_type is None or r.type == run_type),
        ]
        rows = self.workspace.store.get_metric_rows([r.id for r in runs], name)
        return {r.id: m.shape_metrics(row for row in rows if row.run_id == r.id) for r in runs}

    def get_metric_series(self, name: str | None = None) -> dict[str, Any]:
        """Like get_metrics, but every series and table column is a list, however many values were logged."""
        self.flush()
        return m.shape_metrics(self.workspace.store.get_metric_rows([self.id], name), lists=True)

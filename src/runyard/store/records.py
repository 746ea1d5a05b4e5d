"""Plain records that cross the store boundary. No SQL types leak out of store/."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from runyard.errors import InvalidInputError


@dataclass(frozen=True)
class ExperimentRecord:
    id: str
    name: str
    created_time: float
    #: MLflow's lifecycle: "active" | "deleted" (MLflow's experiments/delete; runyard's API ignores it)
    lifecycle_stage: str = "active"
    #: where runs of this experiment keep their MLflow artifacts (None: the workspace's artifact store)
    artifact_location: str | None = None
    #: last rename, tag or delete (None: never changed since created_time)
    last_update_time: float | None = None


#: Keys of RunRecord.data that define what a run executes and who asked for it. They are set when the
#: run is created and never change afterwards (docs/security.md): a token that may edit records must
#: not be able to swap the code a scheduler runs, nor a script run's script, arguments or environment.
SUBMISSION_KEYS = (
    "runDefinition",
    "graph",
    "parameters",
    "continueOnStepFailure",
    "regenerateOutputs",
    "submittedBy",
    "placement",
    "stepRuns",
)


@dataclass
class RunRecord:
    """One run. Columns the store filters or sorts on are fields; everything else lives in `data`.

    `data` holds the run definition, error details, warnings and other JSON the API returns as-is,
    so adding a detail never needs a migration.
    """

    run_id: str
    experiment_id: str
    experiment_name: str
    status: str
    run_type: str
    created_time: float
    parent_id: str | None = None
    display_name: str | None = None
    target: str = "local"
    start_time: float | None = None
    end_time: float | None = None
    number: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    #: MLflow's soft delete: "active" | "deleted" (runs/delete), and when it was deleted
    lifecycle_stage: str = "active"
    deleted_time: float | None = None


#: What a Store's `tags=` / `properties=` run filter accepts: a KeyFilter or one of v1's forms (KeyFilter.of).
KeyFilterLike = Union["KeyFilter", str, Mapping[str, Any], Sequence[Any]]

_FORMS = (Mapping, list, tuple, set, frozenset)


@dataclass(frozen=True)
class KeyFilter:
    """v1's `tags=` / `properties=` run filter in one shape every store takes (SqlStore turns it into SQL,
    RestStore sends it as JSON): runs that have every key in `has`, and whose key in `equal` holds that
    value (a None value: the key is absent or holds no value). Building it checks it, so the Python API,
    the REST route and both databases refuse the same filters."""

    has: tuple[str, ...] = ()
    equal: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.has, tuple) or not all(isinstance(k, str) for k in self.has):
            raise InvalidInputError(f"A run filter's `has` must be a tuple of key names, not {self.has!r}.")
        if not isinstance(self.equal, Mapping) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in self.equal.items()
        ):
            raise InvalidInputError(
                f"A run filter's `equal` maps key names to text (or None), not {self.equal!r}."
            )

    @classmethod
    def of(cls, what: str, wanted: KeyFilterLike | None) -> KeyFilter | None:
        """v1's forms of Run.list(tags=...), get_runs and get_children: "key" keeps runs that have the key;
        {"key": value} runs whose key holds str(value) (None: absent or no value). As runyard always
        took: a list of keys and (key, value) pairs combines both. None: no filter."""
        if wanted is None or isinstance(wanted, KeyFilter):
            return wanted
        if isinstance(wanted, str):
            return cls(has=(wanted,))
        items = (
            list(wanted.items() if isinstance(wanted, Mapping) else wanted)
            if isinstance(wanted, _FORMS)
            else []
        )
        pairs = [i for i in items if not isinstance(i, str)]
        if not isinstance(wanted, _FORMS) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) for p in pairs
        ):
            raise InvalidInputError(
                f"{what}={wanted!r} is not a {what} filter: pass a key name, a dict of key -> value, "
                "or a list of key names and (key, value) pairs."
            )
        return cls(
            has=tuple(i for i in items if isinstance(i, str)),
            equal={k: None if v is None else str(v) for k, v in pairs},
        )

    def to_json(self) -> str:
        return json.dumps({"has": list(self.has), "equal": dict(self.equal)})

    @classmethod
    def from_json(cls, what: str, text: str) -> KeyFilter:
        """The filter RestStore sent (to_json); InvalidInputError for anything else."""
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or set(body) - {"has", "equal"}
            or not isinstance(body.get("has", []), list)
        ):
            raise InvalidInputError(
                f'{what}={text!r} is not a run filter: send JSON {{"has": [keys], "equal": {{key: value}}}}.'
            )
        return cls(has=tuple(body.get("has", [])), equal=body.get("equal", {}))


@dataclass(frozen=True)
class MetricRow:
    """One logged value.

    kind: "scalar" (run.log), "list" (one element of log_list), "row" (log_row / one row of log_table),
    "image" (log_image; payload names the artifact). `writer`/`seq` identify the process that logged the
    row and its sequence number there, so a crash-recovery pass can insert exactly what is missing.
    """

    run_id: str
    name: str
    kind: str
    timestamp: float
    value: float | None = None
    text: str | None = None
    payload: Any = None
    step: int | None = None
    writer: str | None = None
    seq: int | None = None


@dataclass(frozen=True)
class MetricBatch:
    """Scalar values one writer logged to one run, column by column: what a job's metric spool hands the
    store (core/metric_spool.py), without building a MetricRow per value.

    Row i is (names[name_ids[i]], steps[i], values[i], payloads[i], timestamps[i], seqs[i]); every row is
    kind "scalar" with no text. `payloads[i]` keeps an int or bool as logged (values[i] is its float), as
    MetricRow.payload does. Seqs are unique within (run_id, writer): the store keeps each one once.
    """

    run_id: str
    writer: str
    names: list[str]
    name_ids: Sequence[int]
    steps: Sequence[int | None]
    values: Sequence[float | None]
    payloads: Sequence[int | bool | None]
    timestamps: Sequence[float]
    seqs: Sequence[int]

    def __len__(self) -> int:
        return len(self.seqs)

    def rows(self) -> list[MetricRow]:
        """The same values as MetricRows (for stores and checks that take rows)."""
        names = self.names
        return [
            MetricRow(
                run_id=self.run_id,
                name=names[n],
                kind="scalar",
                timestamp=t,
                value=v,
                payload=p,
                step=s,
                writer=self.writer,
                seq=q,
            )
            for n, s, v, p, t, q in zip(
                self.name_ids, self.steps, self.values, self.payloads, self.timestamps, self.seqs, strict=True
            )
        ]


@dataclass(frozen=True)
class MetricSummary:
    """Last/min/max of a numeric scalar metric, kept current on every write so run lists stay fast."""

    run_id: str
    name: str
    count: int
    last: float | None
    min: float | None
    max: float | None
    last_step: int | None


@dataclass(frozen=True)
class MlflowMetric:
    """A run's metric as MLflow shows it on the run: its "latest" value, the one at the highest step (then
    the latest timestamp, then the largest value). value may be NaN or ±inf; timestamp is in seconds."""

    key: str
    value: float
    timestamp: float
    step: int


@dataclass(frozen=True)
class ModelRecord:
    name: str
    version: int
    path: str  # relative to the artifact root: models/<name>/<version>/<basename>
    created_time: float
    tags: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    run_id: str | None = None
    framework: str | None = None


@dataclass(frozen=True)
class TokenRecord:
    """A workspace or run token. The secret itself is never stored, only its sha256."""

    token_id: str
    scope: str
    secret_hash: str
    created_time: float
    name: str | None = None
    run_id: str | None = None
    expires_time: float | None = None
    revoked_time: float | None = None
    compute: tuple[str, ...] = ()  # compute targets this token may submit code to (docs/security.md)


@dataclass(frozen=True)
class ComputeTargetRecord:
    """A named compute target (v1's AmlCompute / ComputeInstance), run on this machine's processes.

    `max_nodes` sets how many runs of the target may run at once (capped by the cores where they run);
    `vm_size` is only a label. `data` keeps the rest of the provisioning configuration (vm_priority,
    idle_seconds_before_scaledown, description, tags) as v1 gave it.
    """

    name: str
    kind: str  # AmlCompute | ComputeInstance
    vm_size: str = ""
    min_nodes: int = 0
    max_nodes: int = 1
    created_time: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatastoreRecord:
    """A registered datastore: an fsspec URL for the store's root plus its non-secret options.

    `kind` keeps v1's datastore type (AzureBlob, AzureDataLakeGen2, AzureFile) or "fsspec" for
    `Datastore.register_fsspec`; `workspaceblobstore` is built in and never a record. Secrets (account
    keys, SAS tokens, secret access keys) are never stored here: `secret_names` lists which storage
    options are kept in the workspace's secrets file or taken from the environment (docs/datasets.md).
    `data` keeps v1's fields as given (account_name, container_name, protocol, endpoint, ...).
    """

    name: str
    kind: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    secret_names: tuple[str, ...] = ()
    created_time: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetRecord:
    """One registered version of a dataset. Immutable once written.

    `definition` is the dataset's definition JSON (data/definition.py: sources, format, transforms);
    `files` are the files it resolved to when registered, each {"datastore", "path", "size", "sha256"},
    and `content_hash` is the sha256 of their canonical JSON, so "version 3" always means the same bytes.
    `id` is v1's dataset id: one per registered version.
    """

    id: str
    name: str
    version: int
    kind: str  # "file" | "tabular"
    definition: dict[str, Any]
    files: list[dict[str, Any]]
    content_hash: str
    created_time: float
    description: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None  # the run whose output it is (OutputFileDatasetConfig.register_on_complete)


@dataclass(frozen=True)
class EnvironmentRecord:
    """One registered version of an environment. Immutable once written.

    `definition` is v1's environment JSON (what `Environment._serialize_to_dict` writes: `python` with
    `condaDependencies`, `environmentVariables`, `docker`, ...), checked by store/env_rules.py.
    `definition_hash` is the sha256 of its canonical JSON without name and version, so registering an
    unchanged definition again returns the same version. Versions count from 1 per name.
    """

    name: str
    version: int
    definition: dict[str, Any]
    definition_hash: str
    created_time: float
    description: str | None = None


@dataclass(frozen=True)
class DatasetUse:
    """Lineage: one dataset a run read ("input") or produced ("output").

    `dataset_id` is the registered version's id, or None for data that was never registered (a datastore
    path, an unregistered dataset); `detail` then says what it was ({"datastore", "path"} or the
    definition), and `content_hash` which bytes were read or written.
    """

    run_id: str
    direction: str  # "input" | "output"
    name: str  # the input or output name within the run
    content_hash: str
    dataset_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    created_time: float = 0.0


# -- studio queries (SqlStore only: the studio is served by the process that holds the database) ----

METRIC_AGGREGATES = ("last", "min", "max")


@dataclass(frozen=True)
class MetricColumn:
    """A runs-table column showing one scalar metric's last, min or max value."""

    name: str
    agg: str = "last"  # one of METRIC_AGGREGATES

    @property
    def key(self) -> str:
        return f"{self.agg}:{self.name}"


@dataclass(frozen=True)
class RunQuery:
    """One page of the runs table: filters, metric columns, sort and window.

    `sort` is one of "created", "status", "duration", "experiment", "name", "number" or a
    MetricColumn key ("last:loss"); runs without a value for a sorted metric come last either way.
    Runs with equal values are ordered by creation time, or by run id when sorted by a metric (which
    lets the database read the page straight off an index).
    """

    experiment_name: str | None = None
    status: str | None = None
    tag_key: str | None = None
    tag_value: str | None = None  # None: any run that has the tag
    text: str | None = None  # case-insensitive substring of run id, display name or experiment name
    top_level_only: bool = True
    columns: tuple[MetricColumn, ...] = ()
    sort: str = "created"
    descending: bool = True
    offset: int = 0
    limit: int = 50


@dataclass
class RunPage:
    runs: list[RunRecord]
    total: int  # runs matching the filters, all pages
    values: dict[str, dict[str, float | None]]  # run_id -> column key -> value
    tags: dict[str, dict[str, Any]]  # run_id -> tags


@dataclass(frozen=True)
class ExperimentSummary:
    name: str
    created_time: float
    run_count: int  # top-level runs
    latest_run: RunRecord | None


@dataclass(frozen=True)
class ChartSeries:
    """A scalar metric ready to plot: x is the logged step, or the row's index when no step was given.

    When `downsampled`, each kept point is the minimum or maximum of a stretch of the series, so
    spikes survive; `count` is the number of values logged.
    """

    run_id: str
    name: str
    x: list[float]
    y: list[float]
    count: int
    downsampled: bool


#: The two states v1 gives a published pipeline, an endpoint and a schedule.
ACTIVE, DISABLED = "Active", "Disabled"


@dataclass(frozen=True)
class PublishedPipelineRecord:
    """A pipeline frozen when it was published (v1's PublishedPipeline).

    `graph` is the compiled graph with every step's source snapshot id pinned, so later edits of the files on
    disk change nothing; submitting it builds a new PipelineRun from this graph alone. `data` keeps who
    published it (`createdBy`, a principal stamp like RunRecord.data["submittedBy"]; absent for the
    workspace's own user) and `sourceRunId` when it was published from a run.
    """

    id: str
    name: str
    status: str  # Active | Disabled
    created_time: float
    graph: dict[str, Any]
    description: str | None = None
    version: str | None = None
    continue_on_step_failure: bool = False
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineEndpointRecord:
    """A named, versioned door to published pipelines (v1's PipelineEndpoint).

    `versions` maps "0", "1", … to published pipeline ids; `default_version` is the one a submit without
    `pipeline_version` runs. Names are unique in a workspace.
    """

    id: str
    name: str
    status: str  # Active | Disabled
    created_time: float
    default_version: str
    versions: dict[str, str]
    description: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule (v1's Schedule): a recurrence or a datastore watch that submits a published pipeline
    (or an endpoint's default version) to an experiment.

    `recurrence` is v1's ScheduleRecurrence as JSON (frequency, interval, start_time as ISO 8601 text,
    time_zone, hours, minutes, week_days, time_of_day); a watch has `datastore_name`/`path_on_datastore`/
    `polling_interval` (minutes) instead. The scheduler owns `next_fire_time` (epoch seconds), moved only by
    `claim_schedule_firing`; `last_run_id` is the run of the latest firing (its id is chosen when the
    firing is claimed, so a scheduler killed before it created the run creates it on restart, once).
    `data` keeps `createdBy` (the principal firings are submitted as) and the watch's last listing.
    """

    id: str
    name: str
    status: str  # Active | Disabled
    experiment_name: str
    created_time: float
    pipeline_id: str | None = None
    pipeline_endpoint_id: str | None = None
    description: str | None = None
    recurrence: dict[str, Any] | None = None
    datastore_name: str | None = None
    path_on_datastore: str | None = None
    polling_interval: float | None = None  # minutes; v1 takes whole minutes, runyard also fractions
    data_path_parameter_name: str | None = None
    continue_on_step_failure: bool | None = None
    pipeline_parameters: dict[str, Any] = field(default_factory=dict)
    next_fire_time: float | None = None
    last_fire_time: float | None = None
    last_run_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

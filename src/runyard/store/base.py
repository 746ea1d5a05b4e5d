"""The Store protocol: everything runyard records about experiments, runs, metrics and models.

Bytes (logs, outputs, model files) live in the ArtifactStore; this protocol holds the records.
`SqlStore` implements it for SQLite and PostgreSQL; `RestStore` talks to a server that wraps a SqlStore.

Every write checks its input with the rules in store/validation.py (InvalidInputError naming the field
and the fix), so both databases, the server and the Python API accept and refuse the same records;
database errors reach callers as RunyardErrors, never as SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from runyard.store.records import (
    ComputeTargetRecord,
    DatasetRecord,
    DatasetUse,
    DatastoreRecord,
    EnvironmentRecord,
    ExperimentRecord,
    KeyFilterLike,
    MetricBatch,
    MetricRow,
    MetricSummary,
    ModelRecord,
    PipelineEndpointRecord,
    PublishedPipelineRecord,
    RunRecord,
    ScheduleRecord,
)


class Store(Protocol):
    uri: str

    # experiments
    def get_or_create_experiment(self, name: str) -> ExperimentRecord: ...
    def get_experiment(self, name: str) -> ExperimentRecord:
        """ExperimentNotFound if absent."""
        ...

    def list_experiments(self) -> list[ExperimentRecord]: ...

    # runs
    def create_run(self, run: RunRecord) -> RunRecord:
        """Insert the run and assign its per-experiment `number`. ConflictError if the id is taken;
        InvalidInputError if its parent does not exist or its id is not one safe folder name."""
        ...

    def create_runs(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        """Insert several runs in one transaction (a pipeline and its steps)."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """RunNotFound if absent."""
        ...

    def list_runs(
        self,
        experiment_name: str | None = None,
        status: Sequence[str] | None = None,
        parent_id: str | None = None,
        top_level_only: bool = False,
        limit: int | None = None,
        run_type: str | None = None,
        display_name: str | None = None,
        fingerprint: str | None = None,
        exclude_parent: str | None = None,
        property_key: str | None = None,
        property_value: str | None = None,
        tags: KeyFilterLike | None = None,
        properties: KeyFilterLike | None = None,
        target: str | None = None,
    ) -> list[RunRecord]:
        """Newest first. `exclude_parent` leaves out the children of that run. `property_key` keeps the
        runs that have that property (with `property_value`, only where it has that value). `tags` and
        `properties` are v1's run filters (records.KeyFilter.of: a key, a dict of key -> value, ...);
        `target` keeps the runs on that compute target. Every filter is applied in the same query:
        listing runs must never fetch each run's tags or properties (InvalidInputError for a bad filter)."""
        ...

    def list_descendants(
        self,
        run_id: str,
        recursive: bool,
        *,
        run_type: str | None = None,
        status: Sequence[str] | None = None,
        tags: KeyFilterLike | None = None,
        properties: KeyFilterLike | None = None,
    ) -> list[RunRecord]:
        """Children (all generations when `recursive`), oldest first, that pass the filters, which work as
        list_runs's; a child that does not pass is still searched for descendants that do."""
        ...

    def change_marker(self, run_id: str | None = None) -> str:
        """A short text that changes whenever a run's family (the run and its children: statuses, times,
        names, tags, metric counts) changes, or with no run id anything the workspace's pages list. Waits
        poll it (one query) and re-read records only when it moved."""
        ...

    def set_run_status(
        self,
        run_id: str,
        status: str,
        *,
        error: Mapping[str, Any] | None = None,
        force: bool = False,
        data: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> RunRecord:
        """Move a run to `status`, stamping start/end times, merging `data` into its data and setting
        its fingerprint, all in one transaction.

        A run that reached a terminal status keeps it for good: an unforced call returns the record
        unchanged (a late "Completed" from a dying process cannot overwrite "Canceled"), and a forced move
        to another status raises RunFinishedError (a ConflictError). `force` only moves runs that have not
        ended: out of CancelRequested, or a Queued step back to NotStarted.
        ConflictError if `data` changes a SUBMISSION_KEYS value the run already has.
        """
        ...

    def update_run_data(self, run_id: str, patch: Mapping[str, Any]) -> RunRecord:
        """Merge `patch` into the run's data (top-level keys replaced). ConflictError if it changes what
        the run was submitted with (records.SUBMISSION_KEYS) once the run has any of those keys."""
        ...

    # tags and properties
    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None: ...
    def remove_tags(self, run_id: str, keys: Iterable[str]) -> None: ...
    def get_tags(self, run_id: str) -> dict[str, Any]: ...
    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        """ConflictError when a key already holds a different value: properties are immutable."""
        ...

    def get_properties(self, run_id: str) -> dict[str, str]: ...

    # metrics
    def append_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Insert many rows in one transaction and update each metric's summary. The whole batch is
        refused (InvalidInputError) if any row has a bad name, kind or a non-finite value."""
        ...

    def append_metric_batch(self, batch: MetricBatch) -> None:
        """append_metrics for a column-wise batch of scalars (a job's spool): same rules, same
        exactly-once by (run_id, writer, seq), same summaries; made for hundreds of thousands of rows/s."""
        ...

    def get_metric_rows(self, run_ids: Sequence[str], name: str | None = None) -> list[MetricRow]:
        """Rows in the order they were logged."""
        ...

    def get_metric_summaries(self, run_ids: Sequence[str]) -> list[MetricSummary]: ...
    def last_metric_seq(self, run_id: str, writer: str) -> int:
        """Highest `seq` stored for this writer on this run, or -1."""
        ...

    def count_metric_rows(self, run_id: str | None = None) -> int: ...

    # models
    def register_model(self, model: ModelRecord) -> ModelRecord:
        """Store `model` as the next version of its name (the given version is ignored)."""
        ...

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        """Latest version when `version` is None. ModelNotFound if absent."""
        ...

    def list_models(self, name: str | None = None, latest: bool = False) -> list[ModelRecord]: ...

    # named compute targets ('local' is built in and never a record)
    def create_compute_target(self, target: ComputeTargetRecord) -> ComputeTargetRecord:
        """ConflictError if the name is taken; ComputeTargetException if the name or sizes break v1's rules."""
        ...

    def update_compute_target(self, target: ComputeTargetRecord) -> ComputeTargetRecord:
        """Replace an existing target's settings (its created_time stays). ComputeTargetException if absent,
        ConflictError if it is of another kind."""
        ...

    def get_compute_target(self, name: str) -> ComputeTargetRecord:
        """ComputeTargetException (v1's name, which samples catch) if absent."""
        ...

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        """By name."""
        ...

    def delete_compute_target(self, name: str) -> None:
        """ComputeTargetException if absent or 'local'."""
        ...

    # datastores ('workspaceblobstore' is built in and never a record; see data/datastore.py)
    def save_datastore(self, record: DatastoreRecord, overwrite: bool = False) -> DatastoreRecord:
        """Create a datastore, or replace one of the same name when `overwrite` (its created_time stays).
        ConflictError if the name is taken and not `overwrite`; InvalidInputError for a bad name or URL."""
        ...

    def get_datastore(self, name: str) -> DatastoreRecord:
        """Names are case-insensitive, as in v1. DatastoreNotFound if absent."""
        ...

    def list_datastores(self) -> list[DatastoreRecord]:
        """By name."""
        ...

    def delete_datastore(self, name: str) -> None:
        """DatastoreNotFound if absent. Clears the default when it was the default."""
        ...

    def get_default_datastore_name(self) -> str | None:
        """The name set by set_default_datastore_name, or None (then 'workspaceblobstore' is the default)."""
        ...

    def set_default_datastore_name(self, name: str) -> None:
        """DatastoreNotFound unless `name` is 'workspaceblobstore' or a registered datastore."""
        ...

    # datasets: versioned, immutable records
    def register_dataset(self, record: DatasetRecord, create_new_version: bool = False) -> DatasetRecord:
        """Store `record` as the next version of its name (record.version and record.id are assigned
        here). When the name exists and not `create_new_version`: return the latest version if it has
        the same kind, definition and content_hash, else ConflictError saying to pass
        create_new_version=True. InvalidInputError for a bad name, kind or file list."""
        ...

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        """Latest version when `version` is None. DatasetNotFound if absent."""
        ...

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        """DatasetNotFound if absent."""
        ...

    def list_datasets(self, name: str | None = None, latest: bool = False) -> list[DatasetRecord]:
        """By name, newest version first; `latest`: one record per name."""
        ...

    # environments
    def register_environment(self, name: str, definition: Mapping[str, Any]) -> EnvironmentRecord:
        """Store `definition` as the next version of `name`; when the latest version has the same
        definition_hash, return it unchanged (v1: re-registering an identical definition keeps the
        version). InvalidInputError for a bad name (a reserved AzureML/Microsoft prefix included) or a
        definition that does not follow the rules in store/env_rules.py."""
        ...

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        """Latest version when `version` is None. EnvironmentNotFound naming the known names if absent."""
        ...

    def list_environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        """`name` None: the latest version of every name, by name; else every version of it, newest first."""
        ...

    # lineage
    def record_dataset_uses(self, uses: Sequence[DatasetUse]) -> None:
        """Append lineage rows (one transaction). The same (run_id, direction, name) twice keeps the last."""
        ...

    def list_dataset_uses(
        self, run_id: str | None = None, dataset_id: str | None = None, dataset_name: str | None = None
    ) -> list[DatasetUse]:
        """Lineage rows filtered by run, by registered version, or by every version of a name; oldest first."""
        ...

    # published pipelines, pipeline endpoints and schedules (rules: store/publish_rules.py)
    def create_published_pipeline(self, record: PublishedPipelineRecord) -> PublishedPipelineRecord:
        """ConflictError if the id is taken; InvalidInputError for a bad name, status, graph or data."""
        ...

    def get_published_pipeline(self, pipeline_id: str) -> PublishedPipelineRecord:
        """PublishedPipelineNotFound if absent."""
        ...

    def list_published_pipelines(self, active_only: bool = True) -> list[PublishedPipelineRecord]:
        """Newest first; `active_only` leaves out the Disabled ones."""
        ...

    def set_published_pipeline_status(self, pipeline_id: str, status: str) -> PublishedPipelineRecord:
        """Active or Disabled. PublishedPipelineNotFound if absent."""
        ...

    def create_pipeline_endpoint(self, record: PipelineEndpointRecord) -> PipelineEndpointRecord:
        """ConflictError if the name (or id) is taken; PublishedPipelineNotFound if a version names a
        pipeline that was never published."""
        ...

    def get_pipeline_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> PipelineEndpointRecord:
        """By id or by name (both: both must match). PipelineEndpointNotFound if absent."""
        ...

    def list_pipeline_endpoints(self, active_only: bool = True) -> list[PipelineEndpointRecord]:
        """By name."""
        ...

    def add_pipeline_endpoint_version(
        self, endpoint_id: str, pipeline_id: str, set_default: bool = False
    ) -> PipelineEndpointRecord:
        """In one transaction: the next version is str(max + 1); a pipeline already in the endpoint keeps
        its version. `set_default` makes that version the default."""
        ...

    def update_pipeline_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: str | None = None,
        default_version: str | None = None,
    ) -> PipelineEndpointRecord:
        """Change the given fields. ConflictError for a taken name; InvalidInputError for an unknown version."""
        ...

    def create_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        """Returns the record as stored (recurrence normalised). PublishedPipelineNotFound or
        PipelineEndpointNotFound if what it submits does not exist."""
        ...

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        """ScheduleNotFound if absent."""
        ...

    def list_schedules(
        self,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
    ) -> list[ScheduleRecord]:
        """Newest first."""
        ...

    def set_schedule_status(self, schedule_id: str, status: str) -> ScheduleRecord:
        """Active or Disabled; also clears next_fire_time, so the scheduler computes the next firing from
        now (no burst of missed firings). ScheduleNotFound if absent."""
        ...

    def update_schedule(
        self,
        schedule_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        recurrence: dict[str, Any] | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        status: str | None = None,
        polling_interval: float | None = None,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        datastore_name: str | None = None,
    ) -> ScheduleRecord:
        """Schedule.update: the given fields (None: unchanged), checked on the merged record
        (publish_rules.check_schedule). A recurrence on a datastore schedule, or watch settings on a
        recurrence one, is InvalidInputError. A changed recurrence, watch or status clears
        next_fire_time (the scheduler computes it from now: no burst). ScheduleNotFound if absent."""
        ...

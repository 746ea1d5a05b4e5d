"""The database schema, as SQLAlchemy Core tables. Change it only through an Alembic migration.

Timestamps are float seconds since the epoch: they sort and compare the same on SQLite and
PostgreSQL and need no time-zone handling.
"""

from __future__ import annotations

import sqlalchemy as sa

#: The Alembic revision this code expects. tests/test_migrations.py checks it equals Alembic's head.
SCHEMA_HEAD = "0012"

metadata = sa.MetaData()

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_time", sa.Float, nullable=False),
    # MLflow's experiment lifecycle (0012): "active" | "deleted"; where its runs' artifacts go when the
    # creator chose (NULL: the workspace's artifact store); when it was last renamed, tagged or deleted
    sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
    sa.Column("artifact_location", sa.Text, nullable=True),
    sa.Column("last_update_time", sa.Float, nullable=True),
)

# MLflow experiment tags (0012); the values MLflow allows are up to 5,000 characters.
experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column("experiment_id", sa.String(64), sa.ForeignKey("experiments.id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(256), primary_key=True),
    sa.Column("experiment_id", sa.String(64), sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("parent_id", sa.String(256), nullable=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("run_type", sa.String(64), nullable=False),
    sa.Column("display_name", sa.String(256), nullable=True),
    sa.Column("target", sa.String(256), nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("start_time", sa.Float, nullable=True),
    sa.Column("end_time", sa.Float, nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    # sha256 of a pipeline step's inputs and definition (engine/reuse.py); the reuse lookup key
    sa.Column("fingerprint", sa.String(64), nullable=True),
    # MLflow's soft delete (0012): runs/delete sets "deleted" and deleted_time, runs/restore undoes both
    sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
    sa.Column("deleted_time", sa.Float, nullable=True),
    sa.UniqueConstraint("experiment_id", "number", name="uq_runs_experiment_number"),
    sa.Index("ix_runs_experiment_created", "experiment_id", "created_time"),
    # top-level runs newest first (the studio's default page) and a run's children in order
    sa.Index("ix_runs_parent_created", "parent_id", "created_time", "number"),
    sa.Index("ix_runs_status", "status"),
    sa.Index("ix_runs_fingerprint", "fingerprint"),
    sa.Index("ix_runs_type_name", "run_type", "display_name"),
    sa.Index("ix_runs_created", "created_time"),
    # MLflow's search order: start_time DESC, run_id ASC within the searched experiments (0012)
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time", "run_id"),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=True),
)

run_properties = sa.Table(
    "run_properties",
    metadata,
    sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("payload", sa.JSON, nullable=True),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Column("writer", sa.String(64), nullable=True),
    sa.Column("seq", sa.BigInteger, nullable=True),
    # A NaN value (0012): SQLite stores NaN as NULL, so a scalar NaN is kept as value NULL with is_nan true
    # on both databases. NULL (rows from before 0012) means false.
    sa.Column("is_nan", sa.Boolean, nullable=True),
    sa.Index("ix_metrics_run_name", "run_id", "name", "id"),
    # A writer numbers its rows (seq), so a resent batch is recognised and stored once (append_metrics
    # inserts with ON CONFLICT DO NOTHING). Rows without a writer or seq stay allowed: both databases
    # treat NULLs in a unique index as distinct.
    sa.Index("uq_metrics_run_writer_seq", "run_id", "writer", "seq", unique=True),
)

metric_summaries = sa.Table(
    "metric_summaries",
    metadata,
    sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("last_value", sa.Float, nullable=True),
    sa.Column("min_value", sa.Float, nullable=True),
    sa.Column("max_value", sa.Float, nullable=True),
    sa.Column("last_step", sa.BigInteger, nullable=True),
    # MLflow's "latest" value (0012): the value at the highest step, then the latest timestamp, then the
    # largest value; latest_is_nan marks a NaN there (latest_value is then NULL)
    sa.Column("latest_value", sa.Float, nullable=True),
    sa.Column("latest_step", sa.BigInteger, nullable=True),
    sa.Column("latest_timestamp", sa.Float, nullable=True),
    sa.Column("latest_is_nan", sa.Boolean, nullable=True),
    sa.Index("ix_metric_summaries_latest", "name", "latest_value", "run_id"),
    # the studio's runs table sorted by a metric reads these in order (and lists metric names from them)
    sa.Index("ix_metric_summaries_last", "name", "last_value", "run_id"),
    sa.Index("ix_metric_summaries_min", "name", "min_value", "run_id"),
    sa.Index("ix_metric_summaries_max", "name", "max_value", "run_id"),
)

#: Rollup levels: a level-L bucket holds ROLLUP_SIZES[L] consecutive values of one scalar series.
ROLLUP_SIZES = (64, 4096)

# Min/max (with their x) of each fixed-size stretch of a scalar series, kept current by append_metrics so
# charts of huge series read a few thousand rows. A value's index is its 0-based position among its
# (run_id, name)'s scalar rows with a value, in log order; bucket = index // ROLLUP_SIZES[level]; x is the
# value's step, or its index when it was logged without one.
metric_rollups = sa.Table(
    "metric_rollups",
    metadata,
    sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("min_value", sa.Float, nullable=False),
    sa.Column("min_x", sa.BigInteger, nullable=False),
    sa.Column("max_value", sa.Float, nullable=False),
    sa.Column("max_x", sa.BigInteger, nullable=False),
    sa.Column("first_x", sa.BigInteger, nullable=False),
    sa.Column("last_x", sa.BigInteger, nullable=False),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("run_id", sa.String(256), nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=True),
    # sha256 of the secret part; tokens are 256-bit random, so a slow hash would buy nothing
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),  # admin | write | read | run
    sa.Column("run_id", sa.String(256), nullable=True),  # set for run tokens: the run they may write
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("expires_time", sa.Float, nullable=True),
    sa.Column("revoked_time", sa.Float, nullable=True),
    # (last: migration 0006 added it to existing tables at the end)
    # comma-separated compute target names this token may submit code to (NULL: none); see docs/security.md
    sa.Column("compute", sa.String(1024), nullable=True),
)

# Named compute targets (v1's AmlCompute / ComputeInstance), all run by this machine's processes.
# max_nodes bounds how many of the target's runs run at once; vm_size is a label; data holds the rest of
# the provisioning configuration as JSON.
compute_targets = sa.Table(
    "compute_targets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("vm_size", sa.String(255), nullable=False),
    sa.Column("min_nodes", sa.Integer, nullable=False),
    sa.Column("max_nodes", sa.Integer, nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

# Registered datastores: an fsspec URL and its non-secret options (secrets live in the workspace's
# secrets file or the environment; store/validation.py refuses secret-looking keys). Names are stored
# lowercased: v1's datastore names are case-insensitive. 'workspaceblobstore' is built in, never a row.
datastores = sa.Table(
    "datastores",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("secret_names", sa.JSON, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

# Registered dataset versions, immutable once written: what they are (definition) and the files they
# resolved to (files, content_hash), so a version always means the same bytes. `id` is v1's dataset id.
datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("run_id", sa.String(256), nullable=True),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),  # description, tags
    # versions are max+1 in the write transaction; this turns a race between two writers into a retry
    sa.Index("uq_datasets_name_version", "name", "version", unique=True),
)

# Lineage: which data each run read (input) or produced (output), one row per (run, direction, name).
# dataset_id is NULL for data that was never registered (a datastore path); detail then says what it was.
dataset_uses = sa.Table(
    "dataset_uses",
    metadata,
    sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("direction", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("dataset_id", sa.String(64), sa.ForeignKey("datasets.id"), nullable=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    # the runs that used or produced a dataset version (the studio's Datasets page)
    sa.Index("ix_dataset_uses_dataset", "dataset_id", "created_time"),
    sa.Index("ix_dataset_uses_created", "created_time"),
)

# Small workspace-wide settings (today: the default datastore's name under "default_datastore").
workspace_settings = sa.Table(
    "workspace_settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Registered environment versions (v1's environment JSON), immutable once written. definition_hash is the
# sha256 of the definition without its name and version (store/env_rules.py), so registering an unchanged
# definition again finds the version that holds it instead of adding one.
environments = sa.Table(
    "environments",
    metadata,
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("definition_hash", sa.String(64), nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    # versions are max+1 in the write transaction; this turns a race between two writers into a retry.
    # Its leading column also serves every lookup by name (get, list the versions of one name).
    sa.Index("uq_environments_name_version", "name", "version", unique=True),
)

# Published pipelines (v1's PublishedPipeline): a compiled graph frozen at publish time, with every step's
# snapshot pinned. data: createdBy (the principal stamp), sourceRunId. Lists are newest first.
published_pipelines = sa.Table(
    "published_pipelines",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("version", sa.String(255), nullable=True),
    sa.Column("continue_on_step_failure", sa.Boolean, nullable=False),
    sa.Column("graph", sa.JSON, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_published_pipelines_created", "created_time"),
)

# Pipeline endpoints (v1's PipelineEndpoint): a unique name in front of numbered versions, each a published
# pipeline id ({"0": id, "1": id, ...} in `versions`). Versions are added in one write transaction that
# holds the row (FOR UPDATE on PostgreSQL; SQLite writers are serialised), so two adds never share a number.
pipeline_endpoints = sa.Table(
    "pipeline_endpoints",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("default_version", sa.String(32), nullable=False),
    sa.Column("versions", sa.JSON, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("uq_pipeline_endpoints_name", "name", unique=True),
)

# Schedules (v1's Schedule): a recurrence (JSON, store/publish_rules.py) or a datastore watch, submitting a
# published pipeline or an endpoint's default version. next_fire_time is moved only by claim_schedule_firing,
# a compare-and-set, so two schedulers never fire the same moment twice; the due ones are found by
# (status, next_fire_time).
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("experiment_name", sa.String(255), nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("pipeline_id", sa.String(64), sa.ForeignKey("published_pipelines.id"), nullable=True),
    sa.Column("pipeline_endpoint_id", sa.String(64), sa.ForeignKey("pipeline_endpoints.id"), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("recurrence", sa.JSON, nullable=True),
    sa.Column("datastore_name", sa.String(255), nullable=True),
    sa.Column("path_on_datastore", sa.Text, nullable=True),
    sa.Column("polling_interval", sa.Float, nullable=True),
    sa.Column("data_path_parameter_name", sa.String(255), nullable=True),
    sa.Column("continue_on_step_failure", sa.Boolean, nullable=True),
    sa.Column("pipeline_parameters", sa.JSON, nullable=False),
    sa.Column("next_fire_time", sa.Float, nullable=True),
    sa.Column("last_fire_time", sa.Float, nullable=True),
    sa.Column("last_run_id", sa.String(256), nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_schedules_status_next", "status", "next_fire_time"),
    sa.Index("ix_schedules_pipeline", "pipeline_id"),
    sa.Index("ix_schedules_endpoint", "pipeline_endpoint_id"),
    sa.Index("ix_schedules_created", "created_time"),
)

# MLflow 3's logged models (0012): what `mlflow.<flavor>.log_model` and autolog create before uploading a
# model's files to artifact_location and finalizing it (status PENDING -> READY | FAILED). data holds params,
# tags, metrics and status_message as JSON.
mlflow_logged_models = sa.Table(
    "mlflow_logged_models",
    metadata,
    sa.Column("model_id", sa.String(64), primary_key=True),
    sa.Column("experiment_id", sa.String(64), sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("source_run_id", sa.String(256), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model_type", sa.String(255), nullable=True),
    sa.Column("artifact_location", sa.Text, nullable=False),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False),
    sa.Column("created_time", sa.Float, nullable=False),
    sa.Column("last_updated_time", sa.Float, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_mlflow_logged_models_experiment", "experiment_id", "created_time"),
    sa.Index("ix_mlflow_logged_models_run", "source_run_id"),
)

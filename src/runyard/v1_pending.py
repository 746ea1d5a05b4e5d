"""What runyard.v1 does not provide (yet), and why: one table, read by the v1 modules, the tests and the
surface doc.

Why a table and not stub classes: the docs, the signature test and the error a user sees must read the
same sentence. The runyard.v1 modules only re-export real names, through
`__getattr__ = module_getattr(__name__, {name: source})` (imported on first use); for any other name, one
a later issue brings imports as a placeholder that warns
once and raises V1NameNotAvailable on any use (so one missing name does not fail a whole import line of a
notebook); a name that is not planned raises V1NameNotAvailable at the import.

Keys are fnmatch patterns. NAMES match `Name` or `azureml.module:Name`; METHODS match `Class.method` for
methods v1 has and runyard's class lacks. The first matching pattern wins. An entry whose issue is None is
not planned, and its reason says why. tests/test_v1_signatures.py fails on a v1 name or method that is
neither provided nor listed here, and on an entry here that no longer matches anything missing.
"""

from __future__ import annotations

import fnmatch
import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from runyard.errors import RunyardError


class Pending(NamedTuple):
    issue: int | None  # the issue that brings it; None: not planned
    reason: str


class V1NameNotAvailable(RunyardError, ImportError):
    """A v1 name runyard does not provide. An ImportError, so `from runyard.v1.core import Dataset` shows
    this message rather than Python's bare "cannot import name"."""


DOC = "docs/v1-surface.md"

# Reasons shared by many entries.
AZURE = "Azure resource management with no local meaning"
NO_CONTAINERS = Pending(
    None,
    "Docker images, build contexts and registries: runyard runs every job as a local process in a virtual "
    "environment it builds; env.docker's settings are recorded and ignored",
)
R_LANGUAGE = Pending(None, "runyard runs Python; R environments are not planned")
DEPLOYMENT = Pending(None, f"model deployment (web services, images, AKS, packaging): {AZURE}")
CLOUD_COMPUTE = Pending(
    None, f"cloud compute services (Databricks, HDInsight, Batch, Kusto, Synapse...): {AZURE}"
)
SDK_INTERNAL = Pending(
    None, "a constant of the v1 SDK's own implementation that v1 code has no reason to read"
)

IMMUTABLE_DATASET = Pending(
    None, "a registered dataset version is immutable in runyard: register a new version to change it"
)
DATAPREP = Pending(
    None,
    "filters, partitions and time-series views of v1's dataprep engine; read with to_pandas_dataframe() "
    "and use pandas",
)
SPARK_DASK = Pending(None, "Spark and Dask clusters: runyard reads tables with pyarrow and pandas")

SQL_STORES = Pending(None, "SQL datastores have no fsspec filesystem; runyard reads files")
RUN_DEFINITION_DATA = Pending(
    None,
    "v1's internal run-definition data classes; runyard takes the public objects (DatasetConsumptionConfig, "
    "OutputFileDatasetConfig, DataReference) directly",
)

LEGACY = Pending(None, "v1 deprecated it itself; use ComputeTarget / PythonScriptStep instead")
GRAPH_INTERNALS = Pending(
    None, "v1's internal pipeline-graph classes; runyard builds its own graph from the steps"
)
AUTOML = Pending(None, "automated ML and HyperDrive tuning are Azure services with no local counterpart")

NAMES: dict[str, Pending] = {
    # Credentials and Azure plumbing.
    "*Authentication": Pending(
        None, f"Azure Active Directory credentials: {AZURE}; against a server the token counts"
    ),
    "AccessToken": Pending(None, f"Azure Active Directory tokens: {AZURE}"),
    "Audience": Pending(None, f"Azure Active Directory tokens: {AZURE}"),
    "NewLoggingLevel": SDK_INTERNAL,
    "DISCOVERY_END_POINT": SDK_INTERNAL,
    "Keyvault": Pending(None, f"Azure Key Vault secrets: {AZURE}"),
    "PrivateEndPoint*": Pending(None, f"private endpoints: {AZURE}"),
    "WorkspacePrivateEndpointException": Pending(None, f"private endpoints: {AZURE}"),
    "LinkedService": Pending(None, f"linked Synapse workspaces: {AZURE}"),
    "SynapseWorkspaceLinkedServiceConfiguration": Pending(None, f"linked Synapse workspaces: {AZURE}"),
    "diagnostic_log": Pending(
        None, "v1's debug log of Azure service calls; runyard has no service calls to trace"
    ),
    "AzureMLAggregatedException": Pending(None, "raised only by v1's Azure service clients"),
    "DiscoveryUrlNotFoundException": Pending(None, "raised only by v1's Azure service discovery"),
    "ServiceException": Pending(
        None, "raised only by v1's Azure REST clients; a runyard server's errors are RunyardErrors"
    ),
    # Deployment and cloud compute.
    "Image": DEPLOYMENT,
    "Webservice*": DEPLOYMENT,
    "InferenceConfig": DEPLOYMENT,
    "ModelPackage": DEPLOYMENT,
    "ModelProfile": DEPLOYMENT,
    "ResourceConfiguration": DEPLOYMENT,
    "azureml.core.model:[A-Z][A-Z]*_*": SDK_INTERNAL,
    "Databricks*": CLOUD_COMPUTE,
    "Spark*": CLOUD_COMPUTE,
    "*Library": CLOUD_COMPUTE,
    "HdiConfiguration": CLOUD_COMPUTE,
    "KubernetesComputeConfiguration": CLOUD_COMPUTE,
    "AmlComputeConfiguration": Pending(
        None, "RunConfiguration's cluster-provisioning section; use AmlCompute.provisioning_configuration"
    ),
    "ApplicationEndpointConfiguration": Pending(
        None, f"endpoints exposed from a compute instance job: {AZURE}"
    ),
    "Datacache*": Pending(None, f"Azure datacache stores: {AZURE}"),
    "MpiConfiguration": Pending(
        None, "multi-node distributed training: runyard runs each job as local processes"
    ),
    "PyTorchConfiguration": Pending(
        None, "multi-node distributed training: runyard runs each job as local processes"
    ),
    "TensorflowConfiguration": Pending(
        None, "multi-node distributed training: runyard runs each job as local processes"
    ),
    "ParallelTaskConfiguration": Pending(
        None, "multi-node distributed training: runyard runs each job as local processes"
    ),
    "HistoryConfiguration": Pending(
        None, "runyard always records outputs, logs and a snapshot; there is nothing to switch"
    ),
    "*AbstractComputeTarget": LEGACY,
    "LocalTarget": LEGACY,
    "*_legacy_compute_target": LEGACY,
    "*compute_target_prepared": LEGACY,
    "prepare_compute_target": LEGACY,
    "EstimatorStep": LEGACY,
    "MpiStep": LEGACY,
    "AutoML*": AUTOML,
    "HyperDrive*": AUTOML,
    "TrainingOutput": AUTOML,
    # Environments (issue 13 built Environment, CondaDependencies, PythonSection, DockerSection).
    "EnvironmentDefinition": Pending(
        None, "v1's older name for an environment; use Environment(name), which takes the same settings"
    ),
    "PythonEnvironment": Pending(None, "v1 deprecated it itself; use PythonSection (env.python)"),
    "DockerEnvironment": Pending(None, "v1 deprecated it itself; use DockerSection (env.docker)"),
    "Docker*": NO_CONTAINERS,
    "*ContainerRegistry": NO_CONTAINERS,
    "Cr": NO_CONTAINERS,
    "MPI_*_IMAGE": NO_CONTAINERS,
    "ImageBuildDetails": Pending(
        None,
        "Environment.build() builds the virtual environment at once and returns a LocalBuild with the same "
        "status, get_log() and wait_for_completion(); v1 code never constructs ImageBuildDetails itself",
    ),
    "RSection": R_LANGUAGE,
    "RCranPackage": R_LANGUAGE,
    "RGitHubPackage": R_LANGUAGE,
    "azureml.core.conda_dependencies:*_*": SDK_INTERNAL,
    "azureml.core.conda_dependencies:CHANNELS": SDK_INTERNAL,
    "azureml.core.conda_dependencies:CPU": SDK_INTERNAL,
    "azureml.core.conda_dependencies:GPU": SDK_INTERNAL,
    "azureml.core.conda_dependencies:PACKAGES": SDK_INTERNAL,
    "azureml.core.conda_dependencies:PIP": SDK_INTERNAL,
    "azureml.core.environment:[A-Z][A-Z]*": SDK_INTERNAL,
    # Data (issue 12 built the rest).
    "azureml.pipeline.core.graph:DataType": Pending(
        None, "v1's registry of pipeline data types; PipelineData(data_type=...) is kept as a label"
    ),
    "DatasetSnapshot": Pending(None, "a registered dataset version is already an immutable snapshot"),
    "DatasetTimestampMissingError": DATAPREP,
    "PipelineDataset": GRAPH_INTERNALS,
    "PipelineOutputAbstractDataset": GRAPH_INTERNALS,
    "*OutputDatasetConfig": Pending(
        None, "HDFS (Spark) and link (Synapse) outputs; OutputFileDatasetConfig is the output runyard takes"
    ),
    "SqlDataReference": SQL_STORES,
    "StoredProcedureParameter*": SQL_STORES,
    "AzurePostgreSqlDatastore": SQL_STORES,
    "AbstractDatastore": RUN_DEFINITION_DATA,
    "InputDatasets": RUN_DEFINITION_DATA,
    "OutputDatasets": RUN_DEFINITION_DATA,
    "LinkOutput": RUN_DEFINITION_DATA,
    "Data": RUN_DEFINITION_DATA,
    "DataLocation": RUN_DEFINITION_DATA,
    "azureml.core.runconfig:DataPath": RUN_DEFINITION_DATA,
    "azureml.core.runconfig:Dataset": RUN_DEFINITION_DATA,
    "DataReferenceConfiguration": RUN_DEFINITION_DATA,
    "DatasetRegistrationOptions": RUN_DEFINITION_DATA,
    "GlobsOptions": RUN_DEFINITION_DATA,
    "MountOptions": RUN_DEFINITION_DATA,
    "OutputData": RUN_DEFINITION_DATA,
    "OutputOptions": RUN_DEFINITION_DATA,
    "RegistrationOptions": RUN_DEFINITION_DATA,
    "RegistrationConfiguration": RUN_DEFINITION_DATA,
    "UploadOptions": RUN_DEFINITION_DATA,
    "TransformationMixin": RUN_DEFINITION_DATA,
    "Uri": RUN_DEFINITION_DATA,
    "FileEncoding": Pending(None, "pass the encoding's name, e.g. encoding='utf8', as the factories take it"),
    "SkipLinesBehavior": DATAPREP,
    "HistogramCompareMethod": Pending(None, "dataset profiles were computed by the Azure ML service"),
    "HDFS_MODE": Pending(None, "HDFS needs a Spark cluster; use as_mount() or as_download()"),
    "LINK_MODE": Pending(None, "link outputs are a Synapse feature"),
    # Publishing (issue 15 built PublishedPipeline, PipelineEndpoint, Schedule and the widgets).
    "PipelineDraft": Pending(
        None,
        "v1's PipelineDraft is the Azure designer's saved, unsubmitted pipeline; runyard keeps pipelines as "
        "code: publish the Pipeline (pipeline.publish) or submit it",
    ),
    # The rest of v1's pipeline graph.
    "Module*": Pending(
        None, "v1's versioned pipeline Modules live in the Azure service; use PythonScriptStep"
    ),
    "Graph": GRAPH_INTERNALS,
    "Node": GRAPH_INTERNALS,
    "Edge": GRAPH_INTERNALS,
    "*Port": GRAPH_INTERNALS,
    "*PortDef": GRAPH_INTERNALS,
    "*PortBinding": GRAPH_INTERNALS,
    "Param": GRAPH_INTERNALS,
    "ParamDef": GRAPH_INTERNALS,
    "DataSource*": GRAPH_INTERNALS,
    "PipelineStep": GRAPH_INTERNALS,
    "ALL_COMPLETED": SDK_INTERNAL,
    "CommandStep": Pending(
        None, "a shell-command step is not in runyard's plan; PythonScriptStep runs any script"
    ),
    "RScriptStep": Pending(None, "runyard runs Python scripts; R is not planned"),
    # Runs and experiments.
    "ScriptRun": Pending(
        None, "a submitted script's run is a plain runyard Run (isinstance(run, Run) holds)"
    ),
    "get_run": Pending(None, "use Run(experiment, run_id) or Workspace.get_run(run_id)"),
    "ViewType": Pending(None, "runyard does not archive experiments, so there is no view to choose"),
    "azureml.core.run:[A-Z][A-Z]*": SDK_INTERNAL,
    "azureml.core.runconfig:[A-Z][A-Z]*": SDK_INTERNAL,
    "get_run_config_from_script_run": SDK_INTERNAL,
    "azureml.core.script_run_config:submit": Pending(
        None, "v1's internal submit helper; use Experiment.submit(config)"
    ),
    # Last, so the specific entries above win.
    "*Compute": CLOUD_COMPUTE,
    "DataTransferStep": Pending(
        None,
        "Azure Data Factory copies; to copy between datastores locally, use a PythonScriptStep that reads "
        "a DataReference and writes an OutputFileDatasetConfig(destination=(datastore, path))",
    ),
    "*Step": CLOUD_COMPUTE,
}

METHODS: dict[str, Pending] = {
    # Azure resource management.
    "Workspace.*private_endpoint*": Pending(None, f"private endpoints: {AZURE}"),
    "Workspace.*key*": Pending(None, f"storage and Key Vault keys: {AZURE}"),
    "Workspace.*connection*": Pending(None, f"workspace connections to Azure services: {AZURE}"),
    "Workspace.images": DEPLOYMENT,
    "Workspace.webservices": DEPLOYMENT,
    "Workspace.linked_services": Pending(None, f"linked Synapse workspaces: {AZURE}"),
    "Workspace.*": Pending(None, AZURE),
    "*.identity": Pending(None, f"managed identities: {AZURE}"),
    "Experiment.*tag*": Pending(None, "experiment tags are not stored by runyard yet; tag runs instead"),
    "Experiment.*": Pending(
        None, "archiving, deleting and re-reading experiments: runyard keeps every experiment"
    ),
    "*Run.add_type_provider": SDK_INTERNAL,
    "*Run.get_secret*": Pending(None, f"Azure Key Vault secrets: {AZURE}"),
    "*Run.submit_child": Pending(
        None, "submitting a job from inside a job; use run.child_run() for logged children"
    ),
    "PipelineRun.save": Pending(None, "v1's pipeline YAML format"),
    "Pipeline.load_yaml": Pending(None, "v1's pipeline YAML format"),
    "PublishedPipeline.save": Pending(None, "v1's pipeline YAML format"),
    "Schedule.load_yaml": Pending(None, "v1's schedule YAML format; create schedules with Schedule.create"),
    "PortDataReference.*": Pending(
        None,
        "reading an earlier pipeline run's output in a new pipeline: pass "
        "Datastore.path(port.path_on_datastore) (a DataReference) to the new step",
    ),
    "PipelineData.as_dataset": Pending(None, "use OutputFileDatasetConfig, whose outputs are datasets"),
    "PythonScriptStep.*": GRAPH_INTERNALS,
    "ParallelRunStep.*": GRAPH_INTERNALS,
    **{
        f"Datastore.{method}": Pending(
            None, "SQL, HDFS, DBFS and Data Lake Gen1 stores have no fsspec filesystem; use register_fsspec"
        )
        for method in (
            "register_azure_data_lake",
            "register_azure_my_sql",
            "register_azure_postgre_sql",
            "register_azure_sql_database",
            "register_dbfs",
            "register_hdfs",
        )
    },
    "*Dataset.File": Pending(None, "the factories live on Dataset: use Dataset.File / Dataset.Tabular"),
    "*Dataset.Tabular": Pending(None, "the factories live on Dataset: use Dataset.File / Dataset.Tabular"),
    "*Dataset.add_tags": IMMUTABLE_DATASET,
    "*Dataset.remove_tags": IMMUTABLE_DATASET,
    "*Dataset.update": IMMUTABLE_DATASET,
    "*Dataset.data_changed_time": IMMUTABLE_DATASET,
    "*Dataset.unregister_all_versions": Pending(
        None, "registered versions stay: the lineage of the runs that read or produced them points at them"
    ),
    "*Dataset.partition_keys": DATAPREP,
    "*Dataset.get_partition_key_values": DATAPREP,
    "*Dataset.partition_by": DATAPREP,
    "*Dataset.filter": DATAPREP,
    **{
        f"*Dataset.{method}": DATAPREP
        for method in (
            "time_after",
            "time_before",
            "time_between",
            "time_recent",
            "timestamp_columns",
            "with_timestamp_columns",
        )
    },
    **{
        f"*Dataset.{method}": Pending(None, "dataset profiles were computed by the Azure ML service")
        for method in (
            "get_profile",
            "get_profile_runs",
            "submit_profile_run",
            "generate_profile",
            "compare_profiles",
        )
    },
    "*Dataset.to_spark_dataframe": SPARK_DASK,
    "*Dataset.to_dask_dataframe": SPARK_DASK,
    "*DatasetFactory.register_spark_dataframe": SPARK_DASK,
    "*DatasetFactory.register_dask_dataframe": SPARK_DASK,
    "*DatasetFactory.from_sql_query": Pending(None, "SQL datastores have no fsspec filesystem"),
    "TabularDataset.download": Pending(
        None,
        "v1 downloads a tabular dataset's stream column; use to_csv_files() / to_parquet_files().download()",
    ),
    "TabularDataset.mount": Pending(
        None, "v1 mounts a tabular dataset's stream column; use to_csv_files() / to_parquet_files().mount()"
    ),
    "FileDataset.as_cache": Pending(None, f"Azure datacache stores: {AZURE}"),
    "FileDataset.hydrate": Pending(None, f"Azure datacache stores: {AZURE}"),
    "FileDataset.file_metadata": DATAPREP,
    "Dataset.*": Pending(
        None,
        "the instance API of v1's deprecated Dataset class (before FileDataset / TabularDataset); use "
        "Dataset.File / Dataset.Tabular and Dataset.get_by_name",
    ),
    "Model.add_dataset_references": Pending(
        None, "models do not list datasets; the lineage of the run that produced the model does"
    ),
    "Model.deploy": DEPLOYMENT,
    "Model.package": DEPLOYMENT,
    "Model.profile": DEPLOYMENT,
    "Model.print_configuration": DEPLOYMENT,
    "Model.get_sas_urls": Pending(None, f"Azure storage SAS links: {AZURE}"),
    "Model.*serialize": Pending(None, "v1's Azure service JSON for a model"),
    "Model.*": Pending(None, "editing or deleting a registered model: register a new version instead"),
}


def classify_name(module: str, name: str) -> Pending | None:
    """The pending entry for v1's `module:name` (module as `azureml.x.y`), or None if none matches."""
    key = f"{module}:{name}"
    for pattern, pending in NAMES.items():
        if fnmatch.fnmatchcase(key if ":" in pattern else name, pattern):
            return pending
    return None


def classify_method(cls: str, method: str) -> Pending | None:
    """The pending entry for v1's `cls.method`, or None if none matches."""
    for pattern, pending in METHODS.items():
        if fnmatch.fnmatchcase(f"{cls}.{method}", pattern):
            return pending
    return None


def exact_method_entry(cls: str, method: str) -> str | None:
    """What to tell a user who called `cls.method` that runyard lacks, when an entry names exactly that
    method (a pattern like `Workspace.*` cannot tell a v1 method from a typo, so it is not used here)."""
    for pattern, pending in METHODS.items():
        name_part = pattern.split(".", 1)[-1]
        if any(c in name_part for c in "*?[") or not fnmatch.fnmatchcase(f"{cls}.{method}", pattern):
            continue
        where = f"v1's {cls}.{method}"
        if pending.issue is None:
            return f"{where} is not planned in runyard: {pending.reason} (see {DOC})."
        return f"{where} is not available in runyard yet: {pending.reason} (see {DOC})."
    return None


def describe(pending: Pending) -> str:
    """The status of a pending entry as the surface doc and error messages word it."""
    if pending.issue is None:
        return f"not planned: {pending.reason}"
    return f"not available yet: {pending.reason}"


class V1NotAvailableWarning(UserWarning):
    """An imported v1 name is a placeholder: the import works, any use raises V1NameNotAvailable."""


class _PlaceholderType(type):
    """The type of a placeholder class: calling it, or reading any attribute, raises its message."""

    _v1_message: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise V1NameNotAvailable(cls._v1_message)

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise V1NameNotAvailable(f"{cls._v1_message.split(' is not')[0]}.{attr}: {cls._v1_message}")

    def __repr__(cls) -> str:
        return f"<placeholder: {cls._v1_message}>"


_placeholders: dict[str, type] = {}


def placeholder(qualified: str, message: str) -> type:
    """The one placeholder class for a v1 name that a later issue brings (cached, so `is` holds)."""
    if qualified not in _placeholders:
        name = qualified.rsplit(".", 1)[1]
        _placeholders[qualified] = _PlaceholderType(name, (), {"_v1_message": message, "__doc__": message})
    return _placeholders[qualified]


def is_placeholder(obj: Any) -> bool:
    return isinstance(obj, _PlaceholderType)


def module_getattr(module_name: str, sources: Mapping[str, str] | None = None) -> Callable[[str], Any]:
    """The `__getattr__` of a runyard.v1 module: its re-exported names, imported on first use, and the
    v1 names runyard lacks.

    `sources` maps each name the module re-exports to where it lives: "package.module", or
    "package.module:attribute" when the name differs. A ported training script's first line,
    `from azureml.core import Run`, must import only what Run needs, not datasets, environments and
    compute targets (the job's hot path, docs/architecture.md); the value is cached in the module.

    A name a later issue brings imports as a placeholder (with one warning) and raises
    V1NameNotAvailable when used: `from azureml.core import Workspace, Experiment, Environment` must not
    take Workspace and Experiment down with it, or a ported notebook stops at its first cell. A name that
    is not planned raises at the import, since no later runyard will make that line work.
    """
    v1_module = "azureml" + module_name[len("runyard.v1") :]
    known = dict(sources or {})

    def __getattr__(name: str) -> Any:
        source = known.get(name)
        if source is not None:
            module, _, attribute = source.partition(":")
            value = getattr(importlib.import_module(module), attribute or name)
            setattr(sys.modules[module_name], name, value)
            return value
        pending = None if name.startswith("__") else classify_name(v1_module, name)
        if pending is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        qualified = f"{v1_module}.{name}"
        if pending.issue is None:
            raise V1NameNotAvailable(f"{qualified} is not planned in runyard: {pending.reason} (see {DOC})")
        message = f"{qualified} is not available in runyard yet: {pending.reason} (see {DOC})"
        if qualified not in _placeholders:
            warnings.warn(f"{message}; using it raises an error", V1NotAvailableWarning, stacklevel=2)
        return placeholder(qualified, message)

    return __getattr__

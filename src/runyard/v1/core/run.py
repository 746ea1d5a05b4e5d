"""azureml.core.run"""

from runyard.v1_pending import module_getattr

__all__ = [
    "AbstractDataset",
    "ActivityFailedException",
    "DataPath",
    "Datastore",
    "Environment",
    "ExperimentExecutionException",
    "Run",
    "RunEnvironmentException",
    "SnapshotException",
    "UserErrorException",
]
__getattr__ = module_getattr(
    __name__,
    {
        "AbstractDataset": "runyard.data.dataset",
        "ActivityFailedException": "runyard.errors",
        "DataPath": "runyard.data.datapath",
        "Datastore": "runyard.data.datastore",
        "Environment": "runyard.environments.environment",
        "ExperimentExecutionException": "runyard.errors",
        "Run": "runyard.core",
        "RunEnvironmentException": "runyard.errors",
        "SnapshotException": "runyard.errors",
        "UserErrorException": "runyard.errors",
    },
)

"""azureml.exceptions"""

from runyard.v1_pending import module_getattr

__all__ = [
    "ActivityFailedException",
    "AuthenticationException",
    "AzureMLException",
    "ComputeTargetException",
    "ExperimentExecutionException",
    "ModelNotFoundException",
    "ModelPathNotFoundException",
    "ParallelRunException",
    "ProjectSystemException",
    "RunConfigurationException",
    "RunEnvironmentException",
    "SnapshotException",
    "TrainingException",
    "UserErrorException",
    "WorkspaceException",
]
__getattr__ = module_getattr(
    __name__,
    {
        "ActivityFailedException": "runyard.errors",
        "AuthenticationException": "runyard.errors",
        "AzureMLException": "runyard.errors",
        "ComputeTargetException": "runyard.errors",
        "ExperimentExecutionException": "runyard.errors",
        "ModelNotFoundException": "runyard.errors",
        "ModelPathNotFoundException": "runyard.errors",
        "ParallelRunException": "runyard.errors",
        "ProjectSystemException": "runyard.errors",
        "RunConfigurationException": "runyard.errors",
        "RunEnvironmentException": "runyard.errors",
        "SnapshotException": "runyard.errors",
        "TrainingException": "runyard.errors",
        "UserErrorException": "runyard.errors",
        "WorkspaceException": "runyard.errors",
    },
)

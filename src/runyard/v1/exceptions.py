"""azureml.exceptions"""

from runyard.errors import (
    ActivityFailedException,
    AuthenticationException,
    AzureMLException,
    ComputeTargetException,
    ExperimentExecutionException,
    ModelNotFoundException,
    ModelPathNotFoundException,
    ParallelRunException,
    ProjectSystemException,
    RunConfigurationException,
    RunEnvironmentException,
    SnapshotException,
    TrainingException,
    UserErrorException,
    WorkspaceException,
)
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
__getattr__ = module_getattr(__name__)

"""azureml.core.run"""

from runyard.core import Run
from runyard.data.datapath import DataPath
from runyard.data.dataset import AbstractDataset
from runyard.data.datastore import Datastore
from runyard.environments.environment import Environment
from runyard.errors import (
    ActivityFailedException,
    ExperimentExecutionException,
    RunEnvironmentException,
    SnapshotException,
    UserErrorException,
)
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
__getattr__ = module_getattr(__name__)

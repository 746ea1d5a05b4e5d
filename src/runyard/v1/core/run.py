"""azureml.core.run"""

from runyard.core import Run
from runyard.data.datastore import Datastore
from runyard.errors import (
    ActivityFailedException,
    ExperimentExecutionException,
    RunEnvironmentException,
    SnapshotException,
    UserErrorException,
)
from runyard.v1_pending import module_getattr

__all__ = [
    "ActivityFailedException",
    "Datastore",
    "ExperimentExecutionException",
    "Run",
    "RunEnvironmentException",
    "SnapshotException",
    "UserErrorException",
]
__getattr__ = module_getattr(__name__)

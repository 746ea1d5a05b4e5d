"""azureml.core.model"""

from runyard.core import Experiment, Model
from runyard.data.dataset import Dataset, FileDataset, TabularDataset
from runyard.environments.environment import Environment
from runyard.errors import ModelNotFoundException, RunEnvironmentException, UserErrorException
from runyard.v1_pending import module_getattr

__all__ = [
    "Dataset",
    "Environment",
    "Experiment",
    "FileDataset",
    "Model",
    "ModelNotFoundException",
    "RunEnvironmentException",
    "TabularDataset",
    "UserErrorException",
]
__getattr__ = module_getattr(__name__)

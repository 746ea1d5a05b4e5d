"""azureml.core"""

from runyard import __version__ as VERSION
from runyard.core import Experiment, Model, Run, ScriptRunConfig, Workspace
from runyard.core.compute_target import ComputeTarget
from runyard.core.runconfig import RunConfiguration
from runyard.data.dataset import Dataset
from runyard.data.datastore import Datastore
from runyard.environments.environment import Environment
from runyard.v1_pending import module_getattr

__all__ = [
    "VERSION",
    "ComputeTarget",
    "Dataset",
    "Datastore",
    "Environment",
    "Experiment",
    "Model",
    "Run",
    "RunConfiguration",
    "ScriptRunConfig",
    "Workspace",
]
__getattr__ = module_getattr(__name__)

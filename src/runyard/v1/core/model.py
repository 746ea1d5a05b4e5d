"""azureml.core.model"""

from runyard.core import Experiment, Model
from runyard.errors import ModelNotFoundException, RunEnvironmentException, UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["Experiment", "Model", "ModelNotFoundException", "RunEnvironmentException", "UserErrorException"]
__getattr__ = module_getattr(__name__)

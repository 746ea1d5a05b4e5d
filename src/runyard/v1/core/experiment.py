"""azureml.core.experiment"""

from runyard.core import Experiment
from runyard.core.compute_target import ComputeInstance
from runyard.core.runconfig import DEFAULT_GPU_IMAGE
from runyard.errors import UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["DEFAULT_GPU_IMAGE", "ComputeInstance", "Experiment", "UserErrorException"]
__getattr__ = module_getattr(__name__)

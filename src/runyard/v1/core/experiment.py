"""azureml.core.experiment"""

from runyard.core import Experiment
from runyard.errors import UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["Experiment", "UserErrorException"]
__getattr__ = module_getattr(__name__)

"""azureml.core.runconfig"""

from runyard.core import Run
from runyard.errors import RunConfigurationException, UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["Run", "RunConfigurationException", "UserErrorException"]
__getattr__ = module_getattr(__name__)

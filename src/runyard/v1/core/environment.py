"""azureml.core.environment"""

from runyard.core.runconfig import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE
from runyard.errors import AzureMLException, UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE", "AzureMLException", "UserErrorException"]
__getattr__ = module_getattr(__name__)

"""azureml.core.environment"""

from runyard.errors import AzureMLException, UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["AzureMLException", "UserErrorException"]
__getattr__ = module_getattr(__name__)

"""azureml.core.authentication"""

from runyard.errors import (
    AuthenticationException,
    AzureMLException,
    RunEnvironmentException,
    UserErrorException,
)
from runyard.v1_pending import module_getattr

__all__ = ["AuthenticationException", "AzureMLException", "RunEnvironmentException", "UserErrorException"]
__getattr__ = module_getattr(__name__)

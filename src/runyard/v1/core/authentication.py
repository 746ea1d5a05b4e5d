"""azureml.core.authentication"""

from runyard.core.authentication import (
    AbstractAuthentication,
    AzureCliAuthentication,
    InteractiveLoginAuthentication,
    MsiAuthentication,
    ServicePrincipalAuthentication,
)
from runyard.errors import (
    AuthenticationException,
    AzureMLException,
    RunEnvironmentException,
    UserErrorException,
)
from runyard.v1_pending import module_getattr

__all__ = [
    "AbstractAuthentication",
    "AuthenticationException",
    "AzureCliAuthentication",
    "AzureMLException",
    "InteractiveLoginAuthentication",
    "MsiAuthentication",
    "RunEnvironmentException",
    "ServicePrincipalAuthentication",
    "UserErrorException",
]
__getattr__ = module_getattr(__name__)

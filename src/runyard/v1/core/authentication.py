"""azureml.core.authentication"""

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
__getattr__ = module_getattr(
    __name__,
    {
        "AbstractAuthentication": "runyard.core.authentication",
        "AuthenticationException": "runyard.errors",
        "AzureCliAuthentication": "runyard.core.authentication",
        "AzureMLException": "runyard.errors",
        "InteractiveLoginAuthentication": "runyard.core.authentication",
        "MsiAuthentication": "runyard.core.authentication",
        "RunEnvironmentException": "runyard.errors",
        "ServicePrincipalAuthentication": "runyard.core.authentication",
        "UserErrorException": "runyard.errors",
    },
)

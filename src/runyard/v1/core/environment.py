"""azureml.core.environment"""

from runyard.environments.conda import PYTHON_DEFAULT_VERSION, CondaDependencies
from runyard.environments.definition import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_GPU_IMAGE,
    DockerSection,
    PythonSection,
    SparkSection,
)
from runyard.environments.environment import Environment, EnvironmentReference
from runyard.errors import AzureMLException, UserErrorException
from runyard.v1_pending import module_getattr

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "PYTHON_DEFAULT_VERSION",
    "AzureMLException",
    "CondaDependencies",
    "DockerSection",
    "Environment",
    "EnvironmentReference",
    "PythonSection",
    "SparkSection",
    "UserErrorException",
]
__getattr__ = module_getattr(__name__)

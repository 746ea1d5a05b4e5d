"""azureml.core.conda_dependencies"""

from runyard import __version__ as VERSION
from runyard.environments.conda import (
    CNTK_DEFAULT_VERSION,
    CONDA_FILE_NAME,
    DEFAULT_SDK_ORIGIN,
    LINUX_PLATFORM,
    PYTHON_DEFAULT_VERSION,
    TENSORFLOW_DEFAULT_VERSION,
    WINDOWS_PLATFORM,
    CondaDependencies,
)
from runyard.errors import UserErrorException
from runyard.v1_pending import module_getattr

__all__ = [
    "CNTK_DEFAULT_VERSION",
    "CONDA_FILE_NAME",
    "DEFAULT_SDK_ORIGIN",
    "LINUX_PLATFORM",
    "PYTHON_DEFAULT_VERSION",
    "TENSORFLOW_DEFAULT_VERSION",
    "VERSION",
    "WINDOWS_PLATFORM",
    "CondaDependencies",
    "UserErrorException",
]
__getattr__ = module_getattr(__name__)

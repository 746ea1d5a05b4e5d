"""azureml.core.conda_dependencies"""

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
__getattr__ = module_getattr(
    __name__,
    {
        "CNTK_DEFAULT_VERSION": "runyard.environments.conda",
        "CONDA_FILE_NAME": "runyard.environments.conda",
        "CondaDependencies": "runyard.environments.conda",
        "DEFAULT_SDK_ORIGIN": "runyard.environments.conda",
        "LINUX_PLATFORM": "runyard.environments.conda",
        "PYTHON_DEFAULT_VERSION": "runyard.environments.conda",
        "TENSORFLOW_DEFAULT_VERSION": "runyard.environments.conda",
        "UserErrorException": "runyard.errors",
        "VERSION": "runyard:__version__",
        "WINDOWS_PLATFORM": "runyard.environments.conda",
    },
)

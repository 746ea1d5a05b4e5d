"""azureml.core.environment"""

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
__getattr__ = module_getattr(
    __name__,
    {
        "AzureMLException": "runyard.errors",
        "CondaDependencies": "runyard.environments.conda",
        "DEFAULT_CPU_IMAGE": "runyard.environments.definition",
        "DEFAULT_GPU_IMAGE": "runyard.environments.definition",
        "DockerSection": "runyard.environments.definition",
        "Environment": "runyard.environments.environment",
        "EnvironmentReference": "runyard.environments.environment",
        "PYTHON_DEFAULT_VERSION": "runyard.environments.conda",
        "PythonSection": "runyard.environments.definition",
        "SparkSection": "runyard.environments.definition",
        "UserErrorException": "runyard.errors",
    },
)

"""azureml.core.runconfig"""

from runyard.v1_pending import module_getattr

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "ComputeTarget",
    "CondaDependencies",
    "DatasetConsumptionConfig",
    "DockerConfiguration",
    "DockerSection",
    "Environment",
    "PythonSection",
    "Run",
    "RunConfiguration",
    "RunConfigurationException",
    "SparkSection",
    "UserErrorException",
]
__getattr__ = module_getattr(
    __name__,
    {
        "ComputeTarget": "runyard.core.compute_target",
        "CondaDependencies": "runyard.environments.conda",
        "DEFAULT_CPU_IMAGE": "runyard.core.runconfig",
        "DEFAULT_GPU_IMAGE": "runyard.core.runconfig",
        "DatasetConsumptionConfig": "runyard.data.consumption",
        "DockerConfiguration": "runyard.core.runconfig",
        "DockerSection": "runyard.environments.definition",
        "Environment": "runyard.environments.environment",
        "PythonSection": "runyard.environments.definition",
        "Run": "runyard.core",
        "RunConfiguration": "runyard.core.runconfig",
        "RunConfigurationException": "runyard.errors",
        "SparkSection": "runyard.environments.definition",
        "UserErrorException": "runyard.errors",
    },
)

"""azureml.core.runconfig"""

from runyard.core import Run
from runyard.core.compute_target import ComputeTarget
from runyard.core.runconfig import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE, DockerConfiguration, RunConfiguration
from runyard.data.consumption import DatasetConsumptionConfig
from runyard.environments.conda import CondaDependencies
from runyard.environments.definition import DockerSection, PythonSection, SparkSection
from runyard.environments.environment import Environment
from runyard.errors import RunConfigurationException, UserErrorException
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
__getattr__ = module_getattr(__name__)

"""azureml.core.script_run_config"""

from runyard.core import ScriptRunConfig
from runyard.core.runconfig import DockerConfiguration, RunConfiguration
from runyard.data.datapath import DataPath, DataPathComputeBinding
from runyard.errors import RunConfigurationException, UserErrorException
from runyard.v1_pending import module_getattr

__all__ = [
    "DataPath",
    "DataPathComputeBinding",
    "DockerConfiguration",
    "RunConfiguration",
    "RunConfigurationException",
    "ScriptRunConfig",
    "UserErrorException",
]
__getattr__ = module_getattr(__name__)

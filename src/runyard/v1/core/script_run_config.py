"""azureml.core.script_run_config"""

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
__getattr__ = module_getattr(
    __name__,
    {
        "DataPath": "runyard.data.datapath",
        "DataPathComputeBinding": "runyard.data.datapath",
        "DockerConfiguration": "runyard.core.runconfig",
        "RunConfiguration": "runyard.core.runconfig",
        "RunConfigurationException": "runyard.errors",
        "ScriptRunConfig": "runyard.core",
        "UserErrorException": "runyard.errors",
    },
)

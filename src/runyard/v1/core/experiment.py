"""azureml.core.experiment"""

from runyard.v1_pending import module_getattr

__all__ = ["DEFAULT_GPU_IMAGE", "ComputeInstance", "Experiment", "UserErrorException"]
__getattr__ = module_getattr(
    __name__,
    {
        "ComputeInstance": "runyard.core.compute_target",
        "DEFAULT_GPU_IMAGE": "runyard.core.runconfig",
        "Experiment": "runyard.core",
        "UserErrorException": "runyard.errors",
    },
)

"""azureml.core.compute_target"""

from runyard.v1_pending import module_getattr

__all__ = ["ComputeTargetException", "UserErrorException"]
__getattr__ = module_getattr(
    __name__,
    {
        "ComputeTargetException": "runyard.errors",
        "UserErrorException": "runyard.errors",
    },
)

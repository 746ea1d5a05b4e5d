"""azureml.core.compute"""

from runyard.v1_pending import module_getattr

__all__ = ["AmlCompute", "ComputeInstance", "ComputeTarget"]
__getattr__ = module_getattr(
    __name__,
    {
        "AmlCompute": "runyard.core.compute_target",
        "ComputeInstance": "runyard.core.compute_target",
        "ComputeTarget": "runyard.core.compute_target",
    },
)

"""azureml.core.compute"""

from runyard.core.compute_target import AmlCompute, ComputeInstance, ComputeTarget
from runyard.v1_pending import module_getattr

__all__ = ["AmlCompute", "ComputeInstance", "ComputeTarget"]
__getattr__ = module_getattr(__name__)

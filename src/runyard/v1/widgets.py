"""azureml.widgets"""

from runyard.v1_pending import module_getattr
from runyard.widgets import ParallelRunStepDetails, RunDetails

__all__ = ["ParallelRunStepDetails", "RunDetails"]
__getattr__ = module_getattr(__name__)

"""azureml.widgets"""

from runyard.v1_pending import module_getattr

__all__ = ["ParallelRunStepDetails", "RunDetails"]
__getattr__ = module_getattr(
    __name__,
    {
        "ParallelRunStepDetails": "runyard.widgets",
        "RunDetails": "runyard.widgets",
    },
)

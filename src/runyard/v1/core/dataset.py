"""azureml.core.dataset"""

from runyard.v1_pending import module_getattr

__all__ = ["Dataset", "PromoteHeadersBehavior"]
__getattr__ = module_getattr(
    __name__,
    {
        "Dataset": "runyard.data.dataset",
        "PromoteHeadersBehavior": "runyard.pipeline.data",
    },
)

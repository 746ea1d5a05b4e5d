"""azureml.core.dataset"""

from runyard.data.dataset import Dataset
from runyard.pipeline.data import PromoteHeadersBehavior
from runyard.v1_pending import module_getattr

__all__ = ["Dataset", "PromoteHeadersBehavior"]
__getattr__ = module_getattr(__name__)

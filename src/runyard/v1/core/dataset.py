"""azureml.core.dataset"""

from runyard.pipeline.data import PromoteHeadersBehavior
from runyard.v1_pending import module_getattr

__all__ = ["PromoteHeadersBehavior"]
__getattr__ = module_getattr(__name__)

"""azureml.data.dataset_factory"""

from runyard.errors import UserErrorException
from runyard.pipeline.data import PromoteHeadersBehavior
from runyard.v1_pending import module_getattr

__all__ = ["PromoteHeadersBehavior", "UserErrorException"]
__getattr__ = module_getattr(__name__)

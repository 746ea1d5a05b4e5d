"""azureml.data.dataset_factory"""

from runyard.errors import UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["UserErrorException"]
__getattr__ = module_getattr(__name__)

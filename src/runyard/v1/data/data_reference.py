"""azureml.data.data_reference"""

from runyard.data.data_reference import DataReference
from runyard.v1_pending import module_getattr

__all__ = ["DataReference"]
__getattr__ = module_getattr(__name__)

"""azureml.data.datapath"""

from runyard.data.data_reference import DataReference
from runyard.data.datapath import DataPath, DataPathComputeBinding
from runyard.v1_pending import module_getattr

__all__ = ["DataPath", "DataPathComputeBinding", "DataReference"]
__getattr__ = module_getattr(__name__)

"""azureml.data.dataset_factory"""

from runyard.data.data_reference import DataReference
from runyard.data.data_type import DataType
from runyard.data.datapath import DataPath
from runyard.data.dataset_factory import FileDatasetFactory, TabularDatasetFactory
from runyard.errors import UserErrorException
from runyard.pipeline.data import PromoteHeadersBehavior
from runyard.v1_pending import module_getattr

__all__ = [
    "DataPath",
    "DataReference",
    "DataType",
    "FileDatasetFactory",
    "PromoteHeadersBehavior",
    "TabularDatasetFactory",
    "UserErrorException",
]
__getattr__ = module_getattr(__name__)

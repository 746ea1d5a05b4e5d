"""azureml.data"""

from runyard.data.data_type import DataType
from runyard.data.dataset import FileDataset, TabularDataset
from runyard.pipeline import OutputFileDatasetConfig
from runyard.v1_pending import module_getattr

__all__ = ["DataType", "FileDataset", "OutputFileDatasetConfig", "TabularDataset"]
__getattr__ = module_getattr(__name__)

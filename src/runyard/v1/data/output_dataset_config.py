"""azureml.data.output_dataset_config"""

from runyard.data.consumption import DIRECT_MODE, MOUNT_MODE, UPLOAD_MODE
from runyard.data.dataset import AbstractDataset
from runyard.pipeline import OutputFileDatasetConfig
from runyard.pipeline.data import PromoteHeadersBehavior
from runyard.pipeline.output_views import OutputTabularDatasetConfig
from runyard.v1_pending import module_getattr

__all__ = [
    "DIRECT_MODE",
    "MOUNT_MODE",
    "UPLOAD_MODE",
    "AbstractDataset",
    "OutputFileDatasetConfig",
    "OutputTabularDatasetConfig",
    "PromoteHeadersBehavior",
]
__getattr__ = module_getattr(__name__)

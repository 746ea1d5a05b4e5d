"""azureml.data.output_dataset_config"""

from runyard.pipeline import OutputFileDatasetConfig
from runyard.pipeline.data import PromoteHeadersBehavior
from runyard.v1_pending import module_getattr

__all__ = ["OutputFileDatasetConfig", "PromoteHeadersBehavior"]
__getattr__ = module_getattr(__name__)

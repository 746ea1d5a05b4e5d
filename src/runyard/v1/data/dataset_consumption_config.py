"""azureml.data.dataset_consumption_config"""

from runyard.data.consumption import DIRECT_MODE, DOWNLOAD_MODE, MOUNT_MODE, DatasetConsumptionConfig
from runyard.v1_pending import module_getattr

__all__ = ["DIRECT_MODE", "DOWNLOAD_MODE", "MOUNT_MODE", "DatasetConsumptionConfig"]
__getattr__ = module_getattr(__name__)

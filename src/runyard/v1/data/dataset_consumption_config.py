"""azureml.data.dataset_consumption_config"""

from runyard.v1_pending import module_getattr

__all__ = ["DIRECT_MODE", "DOWNLOAD_MODE", "MOUNT_MODE", "DatasetConsumptionConfig"]
__getattr__ = module_getattr(
    __name__,
    {
        "DIRECT_MODE": "runyard.data.consumption",
        "DOWNLOAD_MODE": "runyard.data.consumption",
        "DatasetConsumptionConfig": "runyard.data.consumption",
        "MOUNT_MODE": "runyard.data.consumption",
    },
)

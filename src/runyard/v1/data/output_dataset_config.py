"""azureml.data.output_dataset_config"""

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
__getattr__ = module_getattr(
    __name__,
    {
        "AbstractDataset": "runyard.data.dataset",
        "DIRECT_MODE": "runyard.data.consumption",
        "MOUNT_MODE": "runyard.data.consumption",
        "OutputFileDatasetConfig": "runyard.pipeline",
        "OutputTabularDatasetConfig": "runyard.pipeline.output_views",
        "PromoteHeadersBehavior": "runyard.pipeline.data",
        "UPLOAD_MODE": "runyard.data.consumption",
    },
)

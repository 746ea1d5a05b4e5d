"""azureml.data"""

from runyard.v1_pending import module_getattr

__all__ = ["DataType", "FileDataset", "OutputFileDatasetConfig", "TabularDataset"]
__getattr__ = module_getattr(
    __name__,
    {
        "DataType": "runyard.data.data_type",
        "FileDataset": "runyard.data.dataset",
        "OutputFileDatasetConfig": "runyard.pipeline",
        "TabularDataset": "runyard.data.dataset",
    },
)

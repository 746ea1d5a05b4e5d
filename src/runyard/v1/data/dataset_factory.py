"""azureml.data.dataset_factory"""

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
__getattr__ = module_getattr(
    __name__,
    {
        "DataPath": "runyard.data.datapath",
        "DataReference": "runyard.data.data_reference",
        "DataType": "runyard.data.data_type",
        "FileDatasetFactory": "runyard.data.dataset_factory",
        "PromoteHeadersBehavior": "runyard.pipeline.data",
        "TabularDatasetFactory": "runyard.data.dataset_factory",
        "UserErrorException": "runyard.errors",
    },
)

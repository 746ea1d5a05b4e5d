"""azureml.pipeline.core.graph"""

from runyard.v1_pending import module_getattr

__all__ = [
    "AbstractDataset",
    "DataPath",
    "DataPathComputeBinding",
    "DataReference",
    "Dataset",
    "DatasetConsumptionConfig",
    "FileDataset",
    "PipelineParameter",
    "PipelineRun",
    "PortDataReference",
    "PublishedPipeline",
    "TabularDataset",
]
__getattr__ = module_getattr(
    __name__,
    {
        "AbstractDataset": "runyard.data.dataset",
        "DataPath": "runyard.data.datapath",
        "DataPathComputeBinding": "runyard.data.datapath",
        "DataReference": "runyard.data.data_reference",
        "Dataset": "runyard.data.dataset",
        "DatasetConsumptionConfig": "runyard.data.consumption",
        "FileDataset": "runyard.data.dataset",
        "PipelineParameter": "runyard.pipeline",
        "PipelineRun": "runyard.pipeline",
        "PortDataReference": "runyard.pipeline",
        "PublishedPipeline": "runyard.pipeline",
        "TabularDataset": "runyard.data.dataset",
    },
)

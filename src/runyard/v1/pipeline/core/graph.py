"""azureml.pipeline.core.graph"""

from runyard.data.consumption import DatasetConsumptionConfig
from runyard.data.data_reference import DataReference
from runyard.data.datapath import DataPath, DataPathComputeBinding
from runyard.data.dataset import AbstractDataset, Dataset, FileDataset, TabularDataset
from runyard.pipeline import PipelineParameter, PipelineRun, PortDataReference, PublishedPipeline
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
__getattr__ = module_getattr(__name__)

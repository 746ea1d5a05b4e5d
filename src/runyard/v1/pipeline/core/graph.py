"""azureml.pipeline.core.graph"""

from runyard.pipeline import PipelineParameter, PipelineRun, PortDataReference
from runyard.v1_pending import module_getattr

__all__ = ["PipelineParameter", "PipelineRun", "PortDataReference"]
__getattr__ = module_getattr(__name__)

"""azureml.pipeline.core"""

from runyard.pipeline import (
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PortDataReference,
    StepRun,
    StepSequence,
)
from runyard.pipeline.runs import StepRunOutput
from runyard.v1_pending import module_getattr

__all__ = [
    "Pipeline",
    "PipelineData",
    "PipelineParameter",
    "PipelineRun",
    "PortDataReference",
    "StepRun",
    "StepRunOutput",
    "StepSequence",
]
__getattr__ = module_getattr(__name__)

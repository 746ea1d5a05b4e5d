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

__all__ = [
    "Pipeline",
    "PipelineData",
    "PipelineParameter",
    "PipelineRun",
    "PortDataReference",
    "StepRun",
    "StepSequence",
]

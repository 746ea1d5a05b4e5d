"""azureml.pipeline.core"""

from runyard.pipeline import (
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PortDataReference,
    PublishedPipeline,
    Schedule,
    ScheduleRecurrence,
    StepRun,
    StepSequence,
    TimeZone,
)
from runyard.pipeline.port_data import StepRunOutput
from runyard.v1_pending import module_getattr

__all__ = [
    "Pipeline",
    "PipelineData",
    "PipelineEndpoint",
    "PipelineParameter",
    "PipelineRun",
    "PortDataReference",
    "PublishedPipeline",
    "Schedule",
    "ScheduleRecurrence",
    "StepRun",
    "StepRunOutput",
    "StepSequence",
    "TimeZone",
]
__getattr__ = module_getattr(__name__)

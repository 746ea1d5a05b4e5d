"""Pipeline authoring with the Azure ML SDK v1 names (azureml.pipeline.core / .steps)."""

from runyard.pipeline.data import InputBinding, OutputFileDatasetConfig, PipelineData, PipelineParameter
from runyard.pipeline.endpoint import PipelineEndpoint, PipelineIdVersion, PipelineVersion
from runyard.pipeline.output_views import OutputTabularDatasetConfig
from runyard.pipeline.pipeline import Pipeline
from runyard.pipeline.published import PublishedPipeline
from runyard.pipeline.recurrence import ScheduleRecurrence, TimeZone
from runyard.pipeline.runs import PipelineRun, PortDataReference, StepRun
from runyard.pipeline.schedule import Schedule
from runyard.pipeline.steps import PythonScriptStep, StepSequence

__all__ = [
    "InputBinding",
    "OutputFileDatasetConfig",
    "OutputTabularDatasetConfig",
    "Pipeline",
    "PipelineData",
    "PipelineEndpoint",
    "PipelineIdVersion",
    "PipelineParameter",
    "PipelineRun",
    "PipelineVersion",
    "PortDataReference",
    "PublishedPipeline",
    "PythonScriptStep",
    "Schedule",
    "ScheduleRecurrence",
    "StepRun",
    "StepSequence",
    "TimeZone",
]

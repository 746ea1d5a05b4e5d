"""Pipeline authoring with the Azure ML SDK v1 names (azureml.pipeline.core / .steps)."""

from runyard.pipeline.data import InputBinding, OutputFileDatasetConfig, PipelineData, PipelineParameter
from runyard.pipeline.output_views import OutputTabularDatasetConfig
from runyard.pipeline.pipeline import Pipeline
from runyard.pipeline.runs import PipelineRun, PortDataReference, StepRun
from runyard.pipeline.steps import PythonScriptStep, StepSequence

__all__ = [
    "InputBinding",
    "OutputFileDatasetConfig",
    "OutputTabularDatasetConfig",
    "Pipeline",
    "PipelineData",
    "PipelineParameter",
    "PipelineRun",
    "PortDataReference",
    "PythonScriptStep",
    "StepRun",
    "StepSequence",
]

"""Pipeline authoring with the Azure ML SDK v1 names (azureml.pipeline.core / .steps).

Names load lazily (PEP 562): a pipeline step's `Run.get_context()` needs StepRun (pipeline/runs.py,
which core's Run lookups import for the pipeline run types, see runyard/__init__.py), not the
authoring, publishing and scheduling code the other names bring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.lazy_exports import LazyExports

if TYPE_CHECKING:
    from runyard.pipeline.data import InputBinding, OutputFileDatasetConfig, PipelineData, PipelineParameter
    from runyard.pipeline.endpoint import PipelineEndpoint, PipelineIdVersion, PipelineVersion
    from runyard.pipeline.output_views import OutputTabularDatasetConfig
    from runyard.pipeline.pipeline import Pipeline
    from runyard.pipeline.port_data import PortDataReference
    from runyard.pipeline.published import PublishedPipeline
    from runyard.pipeline.recurrence import ScheduleRecurrence, TimeZone
    from runyard.pipeline.runs import PipelineRun, StepRun
    from runyard.pipeline.schedule import Schedule
    from runyard.pipeline.steps import PythonScriptStep, StepSequence

#: Where each lazily loaded public name lives.
_SOURCES = {
    "InputBinding": "runyard.pipeline.data",
    "OutputFileDatasetConfig": "runyard.pipeline.data",
    "OutputTabularDatasetConfig": "runyard.pipeline.output_views",
    "Pipeline": "runyard.pipeline.pipeline",
    "PipelineData": "runyard.pipeline.data",
    "PipelineEndpoint": "runyard.pipeline.endpoint",
    "PipelineIdVersion": "runyard.pipeline.endpoint",
    "PipelineParameter": "runyard.pipeline.data",
    "PipelineRun": "runyard.pipeline.runs",
    "PipelineVersion": "runyard.pipeline.endpoint",
    "PortDataReference": "runyard.pipeline.port_data",
    "PublishedPipeline": "runyard.pipeline.published",
    "PythonScriptStep": "runyard.pipeline.steps",
    "Schedule": "runyard.pipeline.schedule",
    "ScheduleRecurrence": "runyard.pipeline.recurrence",
    "StepRun": "runyard.pipeline.runs",
    "StepSequence": "runyard.pipeline.steps",
    "TimeZone": "runyard.pipeline.recurrence",
}

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


_exports = LazyExports(__name__, _SOURCES, globals())


def __getattr__(name: str) -> Any:
    return _exports.load(name)


def __dir__() -> list[str]:
    return _exports.names()

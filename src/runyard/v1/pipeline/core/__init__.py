"""azureml.pipeline.core"""

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
__getattr__ = module_getattr(
    __name__,
    {
        "Pipeline": "runyard.pipeline",
        "PipelineData": "runyard.pipeline",
        "PipelineEndpoint": "runyard.pipeline",
        "PipelineParameter": "runyard.pipeline",
        "PipelineRun": "runyard.pipeline",
        "PortDataReference": "runyard.pipeline",
        "PublishedPipeline": "runyard.pipeline",
        "Schedule": "runyard.pipeline",
        "ScheduleRecurrence": "runyard.pipeline",
        "StepRun": "runyard.pipeline",
        "StepRunOutput": "runyard.pipeline.port_data",
        "StepSequence": "runyard.pipeline",
        "TimeZone": "runyard.pipeline",
    },
)

"""azureml.pipeline.core.schedule"""

from runyard.v1_pending import module_getattr

__all__ = [
    "Datastore",
    "Experiment",
    "PipelineRun",
    "PublishedPipeline",
    "Schedule",
    "ScheduleRecurrence",
    "TimeZone",
]
__getattr__ = module_getattr(
    __name__,
    {
        "Datastore": "runyard.data.datastore",
        "Experiment": "runyard.core",
        "PipelineRun": "runyard.pipeline",
        "PublishedPipeline": "runyard.pipeline",
        "Schedule": "runyard.pipeline",
        "ScheduleRecurrence": "runyard.pipeline",
        "TimeZone": "runyard.pipeline",
    },
)

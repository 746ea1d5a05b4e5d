"""azureml.pipeline.core.schedule"""

from runyard.core import Experiment
from runyard.data.datastore import Datastore
from runyard.pipeline import PipelineRun, PublishedPipeline, Schedule, ScheduleRecurrence, TimeZone
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
__getattr__ = module_getattr(__name__)

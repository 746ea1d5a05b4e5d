"""azureml.pipeline.core.schedule"""

from runyard.core import Experiment
from runyard.data.datastore import Datastore
from runyard.pipeline import PipelineRun
from runyard.v1_pending import module_getattr

__all__ = ["Datastore", "Experiment", "PipelineRun"]
__getattr__ = module_getattr(__name__)

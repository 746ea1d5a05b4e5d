"""azureml.pipeline.core.schedule"""

from runyard.core import Experiment
from runyard.pipeline import PipelineRun
from runyard.v1_pending import module_getattr

__all__ = ["Experiment", "PipelineRun"]
__getattr__ = module_getattr(__name__)

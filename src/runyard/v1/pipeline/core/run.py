"""azureml.pipeline.core.run"""

from runyard.core import Experiment, Run
from runyard.errors import ActivityFailedException, AzureMLException, ExperimentExecutionException
from runyard.pipeline import PipelineRun, StepRun
from runyard.pipeline.port_data import StepRunOutput
from runyard.v1_pending import module_getattr

__all__ = [
    "ActivityFailedException",
    "AzureMLException",
    "Experiment",
    "ExperimentExecutionException",
    "PipelineRun",
    "Run",
    "StepRun",
    "StepRunOutput",
]
__getattr__ = module_getattr(__name__)

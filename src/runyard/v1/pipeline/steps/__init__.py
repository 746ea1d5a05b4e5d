"""azureml.pipeline.steps"""

from runyard.parallel import ParallelRunConfig, ParallelRunStep
from runyard.pipeline import PythonScriptStep
from runyard.v1_pending import module_getattr

__all__ = ["ParallelRunConfig", "ParallelRunStep", "PythonScriptStep"]
__getattr__ = module_getattr(__name__)

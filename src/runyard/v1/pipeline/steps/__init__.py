"""azureml.pipeline.steps"""

from runyard.pipeline import PythonScriptStep
from runyard.v1_pending import module_getattr

__all__ = ["PythonScriptStep"]
__getattr__ = module_getattr(__name__)

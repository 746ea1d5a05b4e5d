"""azureml.core"""

from runyard import __version__ as VERSION
from runyard.core import Experiment, Model, Run, ScriptRunConfig, Workspace
from runyard.v1_pending import module_getattr

__all__ = ["VERSION", "Experiment", "Model", "Run", "ScriptRunConfig", "Workspace"]
__getattr__ = module_getattr(__name__)

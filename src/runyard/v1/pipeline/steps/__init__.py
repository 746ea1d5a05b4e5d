"""azureml.pipeline.steps"""

from runyard.pipeline import PythonScriptStep

__all__ = ["PythonScriptStep"]

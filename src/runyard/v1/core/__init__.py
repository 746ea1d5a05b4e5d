"""azureml.core"""

from runyard.core import Experiment, Model, Run, ScriptRunConfig, Workspace

__all__ = ["Experiment", "Model", "Run", "ScriptRunConfig", "Workspace"]

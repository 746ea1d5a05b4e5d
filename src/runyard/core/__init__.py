"""The public API: Workspace, Experiment, Run, ScriptRunConfig, Model."""

from runyard.core.experiment import Experiment
from runyard.core.model import Model
from runyard.core.run import Run
from runyard.core.script_run_config import ScriptRunConfig
from runyard.core.workspace import Workspace

__all__ = ["Experiment", "Model", "Run", "ScriptRunConfig", "Workspace"]

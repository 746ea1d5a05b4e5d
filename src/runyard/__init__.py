"""runyard: Azure ML SDK v1's API, local-first.

v1 code ports by changing `azureml.` to `runyard.v1.` (`runyard port` does it); new code imports from here.
"""

from runyard import compute as _compute  # noqa: F401  (registers the local compute target)
from runyard import pipeline as _pipeline  # noqa: F401  (registers PipelineRun / StepRun with Run lookups)
from runyard.core import Experiment, Model, Run, ScriptRunConfig, Workspace
from runyard.core.compute_target import AmlCompute, ComputeTarget
from runyard.core.runconfig import RunConfiguration
from runyard.data import Datastore
from runyard.errors import (
    ActivityFailedException,
    ComputeTargetException,
    ModelNotFoundException,
    RunyardError,
    UserErrorException,
)
from runyard.status import RunStatus

__version__ = "0.1.0"

__all__ = [
    "ActivityFailedException",
    "AmlCompute",
    "ComputeTarget",
    "ComputeTargetException",
    "Datastore",
    "Experiment",
    "Model",
    "ModelNotFoundException",
    "Run",
    "RunConfiguration",
    "RunStatus",
    "RunyardError",
    "ScriptRunConfig",
    "UserErrorException",
    "Workspace",
    "__version__",
]

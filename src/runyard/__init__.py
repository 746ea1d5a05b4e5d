"""runyard: Azure ML SDK v1's API, local-first. Port v1 code by changing `azureml.core` to `runyard`."""

from runyard import compute as _compute  # noqa: F401  (registers the local compute target)
from runyard import pipeline as _pipeline  # noqa: F401  (registers PipelineRun / StepRun with Run lookups)
from runyard.core import Experiment, Model, Run, ScriptRunConfig, Workspace
from runyard.errors import (
    ActivityFailedException,
    ModelNotFoundException,
    RunyardError,
    UserErrorException,
)
from runyard.status import RunStatus

__version__ = "0.1.0"

__all__ = [
    "ActivityFailedException",
    "Experiment",
    "Model",
    "ModelNotFoundException",
    "Run",
    "RunStatus",
    "RunyardError",
    "ScriptRunConfig",
    "UserErrorException",
    "Workspace",
    "__version__",
]

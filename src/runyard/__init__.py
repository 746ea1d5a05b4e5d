"""runyard: Azure ML SDK v1's API, local-first.

v1 code ports by changing `azureml.` to `runyard.v1.` (`runyard port` does it); new code imports from here.

Names load lazily (PEP 562): a submitted job's `import runyard; run = Run.get_context(); run.log(...)`
imports neither the store's database and HTTP clients nor the pipeline and environment layers
(tests/test_job_imports.py lists what it may import). What other layers must tell core is registered
here, because this module runs before any `runyard.X` can be used: the local compute target (a
factory, so the launcher loads when a run launches) and the pipeline Run classes (imported on the
first lookup of a run of their types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard import compute as _compute  # noqa: F401  (registers the local compute target)
from runyard.core import register_run_classes
from runyard.errors import (
    ActivityFailedException,
    ComputeTargetException,
    ModelNotFoundException,
    RunyardError,
    UserErrorException,
)
from runyard.lazy_exports import LazyExports
from runyard.status import RunStatus

if TYPE_CHECKING:
    from runyard.core.compute_target import AmlCompute, ComputeTarget
    from runyard.core.experiment import Experiment
    from runyard.core.model import Model
    from runyard.core.run import Run
    from runyard.core.runconfig import RunConfiguration
    from runyard.core.script_run_config import ScriptRunConfig
    from runyard.core.workspace import Workspace
    from runyard.data import Datastore

# PipelineRun and StepRun add themselves to core's Run lookups when runyard/pipeline/runs.py is imported;
# a lookup of a run of these types imports it first.
register_run_classes("runyard.pipeline.runs", ["azureml.PipelineRun", "azureml.StepRun"])

__version__ = "0.1.0"

#: Where each lazily loaded public name lives.
_SOURCES = {
    "AmlCompute": "runyard.core.compute_target",
    "ComputeTarget": "runyard.core.compute_target",
    "Datastore": "runyard.data",
    "Experiment": "runyard.core.experiment",
    "Model": "runyard.core.model",
    "Run": "runyard.core.run",
    "RunConfiguration": "runyard.core.runconfig",
    "ScriptRunConfig": "runyard.core.script_run_config",
    "Workspace": "runyard.core.workspace",
}

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


_exports = LazyExports(__name__, _SOURCES, globals())


def __getattr__(name: str) -> Any:
    return _exports.load(name)


def __dir__() -> list[str]:
    return _exports.names()

"""The public API: Workspace, Experiment, Run, ScriptRunConfig, Model.

Names load lazily (PEP 562), so `runyard.core.run` (all a job's `Run.get_context()` needs) does not
bring Experiment's submission path, Model's registry or ScriptRunConfig's environments with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from runyard.lazy_exports import LazyExports

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.model import Model
    from runyard.core.run import Run
    from runyard.core.script_run_config import ScriptRunConfig
    from runyard.core.workspace import Workspace

#: Where each lazily loaded public name lives.
_SOURCES = {
    "Experiment": "runyard.core.experiment",
    "Model": "runyard.core.model",
    "Run": "runyard.core.run",
    "ScriptRunConfig": "runyard.core.script_run_config",
    "Workspace": "runyard.core.workspace",
}

__all__ = ["Experiment", "Model", "Run", "ScriptRunConfig", "Workspace"]

#: Run type -> the module that registers its Run subclass in runyard.core.run.RUN_CLASSES when imported.
#: Kept here, not in run.py, so that runyard/__init__.py can fill it without loading the Run class.
RUN_CLASS_MODULES: dict[str, str] = {}


def register_run_classes(module: str, run_types: Iterable[str]) -> None:
    """Say that importing `module` registers the Run classes of `run_types`. runyard/__init__.py names
    runyard.pipeline.runs here, so a process that never looks up a pipeline run (a submitted script's
    job) never imports the pipeline layer, and one that does gets a PipelineRun whatever it imported
    (core.run.run_class_for imports the module on the first lookup of such a run)."""
    for run_type in run_types:
        RUN_CLASS_MODULES[run_type] = module


_exports = LazyExports(__name__, _SOURCES, globals())


def __getattr__(name: str) -> Any:
    return _exports.load(name)


def __dir__() -> list[str]:
    return _exports.names()

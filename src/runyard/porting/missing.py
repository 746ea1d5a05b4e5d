"""Which ported imports name a part of the Azure ML SDK v1 that runyard.v1 does not have.

The port rewrites every `azureml.` import, so `from azureml.train.estimator import PyTorch` becomes
`from runyard.v1.train.estimator import PyTorch` and fails later with a bare ModuleNotFoundError. The port
says so at once instead, with what to use: v1's estimators were deprecated by v1 itself in favour of
ScriptRunConfig with an Environment, which is what runyard runs.

Whether runyard.v1 has a module is read from the files of the runyard.v1 package, not by importing it: a
port must not run runyard's (or anyone's) import-time code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The folder of the runyard.v1 package.
V1_ROOT = Path(__file__).resolve().parent.parent / "v1"

_SCRIPT_RUN = (
    "submit a ScriptRunConfig(source_directory=..., script=..., arguments=[...], compute_target=..., "
    "environment=env) instead, with an Environment whose CondaDependencies list the framework "
    "(e.g. pip_packages=['torch'])"
)
#: Why a v1 module is not in runyard, by module prefix (the longest prefix that matches wins).
REASONS = {
    "azureml.train": (
        "v1's estimators (Estimator, PyTorch, TensorFlow, SKLearn, Chainer) are deprecated in v1 itself "
        f"and runyard does not provide them: {_SCRIPT_RUN}"
    ),
    "azureml.train.hyperdrive": (
        "HyperDrive tuning is an Azure service with no local counterpart in runyard: submit one "
        "ScriptRunConfig per parameter set (its arguments) and compare the runs' metrics"
    ),
    "azureml.train.automl": "automated ML is an Azure service with no local counterpart in runyard",
    "azureml.automl": "automated ML is an Azure service with no local counterpart in runyard",
}
GENERIC = "this part of the Azure ML SDK v1 is not in runyard.v1 (docs/v1-surface.md lists what is)"


def runyard_has(module: str) -> bool:
    """Whether runyard.v1 has the counterpart of v1's `module` (`azureml.core.run` -> runyard/v1/core/run.py
    or runyard/v1/core/run/__init__.py)."""
    parts = module.split(".")[1:]
    if not all(part.isidentifier() for part in parts):
        return False
    path = V1_ROOT.joinpath(*parts)
    return (path / "__init__.py").is_file() or (bool(parts) and path.with_suffix(".py").is_file())


def _prefix(module: str) -> str | None:
    found = [prefix for prefix in REASONS if module == prefix or module.startswith(prefix + ".")]
    return max(found, key=len) if found else None


def reason(module: str) -> str:
    prefix = _prefix(module)
    return REASONS[prefix] if prefix else GENERIC


def runyard_lacks(module: str) -> bool:
    """Whether an import of v1's `module` fails in runyard: a module REASONS names (runyard.v1 may hold
    it only to raise a clear error for each name, as runyard.v1_pending does), or one runyard.v1 lacks."""
    return _prefix(module) is not None or not runyard_has(module)


@dataclass(frozen=True)
class Missing:
    """An import (line `line` of the ported source) of v1's `module`, which runyard.v1 lacks."""

    line: int
    module: str

    def message(self) -> str:
        new = "runyard.v1" + self.module[len("azureml") :]
        return (
            f"line {self.line}: {self.module} is not available in runyard: {reason(self.module)} "
            f"(the import, rewritten to {new}, fails when it runs)"
        )

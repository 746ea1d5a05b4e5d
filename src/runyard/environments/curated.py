"""The local equivalents of v1's curated environments, so `Environment.get(ws, "AzureML-Minimal")` works.

Why a table of modern pins rather than v1's: the curated images pinned packages for Python 3.6-3.8
(scikit-learn 0.24, TensorFlow 2.3, PyTorch 1.6) that have no wheels for the Python >= 3.11 runyard runs
on. Each entry keeps what the environment was *for* and names a current release line that installs
today; `why` says what changed. The packages are those the v1 images installed for jobs to import (their
Dockerfiles: the framework, pandas/numpy/scipy, matplotlib, psutil, tqdm, and azureml-mlflow, whose mlflow
client plan.py adds as mlflow-skinny); the other azureml-* packages are left out, since runyard stands in
for them. No entry pins Python: the build uses the submitting interpreter's version.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from runyard.errors import EnvironmentNotFound


class Curated(NamedTuple):
    description: str
    requirements: tuple[str, ...]
    why: str = ""


_SKLEARN = ("scikit-learn>=1.3", "pandas>=2.1", "numpy>=1.26", "scipy>=1.11", "joblib>=1.3")
#: What the sklearn and lightgbm images installed besides the framework (v1's curated Dockerfiles).
_IMAGE_EXTRAS = ("matplotlib>=3.8", "psutil>=5.9", "tqdm>=4.66", "azureml-mlflow")
_OLD_SKLEARN = "scikit-learn < 1.3 has no wheels for Python >= 3.11; 1.3 reads the same estimator API"

CURATED: dict[str, Curated] = {
    "AzureML-Minimal": Curated("The smallest environment: what runyard itself needs, nothing more.", ()),
    "AzureML-Tutorial": Curated(
        "The tutorials' environment: scikit-learn, pandas, matplotlib.",
        (*_SKLEARN, "matplotlib>=3.8"),
        "v1's image also held azureml-widgets and the AutoML SDK; runyard provides the widget itself",
    ),
    "AzureML-Scikit-learn-0.20.3": Curated(
        "scikit-learn, for the v1 samples that pinned 0.20.3.", _SKLEARN, _OLD_SKLEARN
    ),
    "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu": Curated(
        "scikit-learn with pandas, numpy, matplotlib and mlflow (v1: 0.24 on Python 3.7).",
        (*_SKLEARN, *_IMAGE_EXTRAS),
        _OLD_SKLEARN,
    ),
    "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu": Curated(
        "scikit-learn with pandas, numpy, matplotlib and mlflow (v1: 1.0 on Python 3.8).",
        (*_SKLEARN, *_IMAGE_EXTRAS),
        _OLD_SKLEARN,
    ),
    "AzureML-sklearn-1.5": Curated(
        "scikit-learn 1.5 with pandas, numpy, matplotlib and mlflow.",
        (
            "scikit-learn>=1.5,<1.6",
            "pandas>=2.1",
            "numpy>=1.26",
            "scipy>=1.11",
            "joblib>=1.3",
            *_IMAGE_EXTRAS,
        ),
    ),
    "AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu": Curated(
        "LightGBM with scikit-learn, pandas, matplotlib and mlflow (v1: LightGBM 3.2 on Python 3.7).",
        ("lightgbm>=4.0", *_SKLEARN, *_IMAGE_EXTRAS),
        "LightGBM 3.2 has no wheels for Python >= 3.11; 4.x keeps the scikit-learn API. v1's image also "
        "held xgboost and dask: list them in your own environment if a job imports them",
    ),
    "AzureML-PyTorch-1.6-CPU": Curated(
        "PyTorch on CPU (v1: 1.6).",
        ("torch>=2.1", "torchvision>=0.16", "numpy>=1.26"),
        "PyTorch 1.6 has no wheels for Python >= 3.11; 2.x runs 1.x training code",
    ),
    "AzureML-pytorch-1.10-ubuntu18.04-py38-cuda11-gpu": Curated(
        "PyTorch (v1: 1.10 with CUDA 11 on a GPU image).",
        ("torch>=2.1", "torchvision>=0.16", "numpy>=1.26"),
        "PyTorch 1.10 has no wheels for Python >= 3.11; the default torch wheel includes CUDA on Linux",
    ),
    "AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu": Curated(
        "PyTorch with transformers and accelerate (v1: Azure Container for PyTorch, 1.13).",
        ("torch>=2.1", "transformers>=4.36", "accelerate>=0.25", "datasets>=2.16"),
        "PyTorch 1.13 has no wheels for Python >= 3.11; DeepSpeed and ORT training are left out",
    ),
    "AzureML-TensorFlow-2.3-CPU": Curated(
        "TensorFlow on CPU (v1: 2.3).",
        ("tensorflow>=2.15",),
        "TensorFlow 2.3 has no wheels for Python >= 3.11; 2.15 is the first release line that does",
    ),
    "AzureML-tensorflow-2.4-ubuntu18.04-py37-cuda11-gpu": Curated(
        "TensorFlow (v1: 2.4 with CUDA 11 on a GPU image).",
        ("tensorflow>=2.15",),
        "TensorFlow 2.4 has no wheels for Python >= 3.11; install tensorflow[and-cuda] for a local GPU",
    ),
    "AzureML-VowpalWabbit-8.8.0": Curated(
        "Vowpal Wabbit (v1: 8.8.0).",
        ("vowpalwabbit>=9.9",),
        "Vowpal Wabbit 8.8 has no wheels for Python >= 3.11",
    ),
}


def curated(name: str) -> Curated | None:
    """The table entry for `name` (exact, as v1's names are), or None."""
    return CURATED.get(name)


def is_reserved(name: str) -> bool:
    """v1 reserves the AzureML and Microsoft prefixes for curated environments."""
    return name.startswith(("AzureML", "Microsoft"))


def describe_table() -> str:
    """The table as one line per environment, for errors that list it."""
    return "\n".join(f"  {name}: {entry.description}" for name, entry in CURATED.items())


def curated_definition(name: str) -> dict[str, Any]:
    """The environment JSON of a curated name: its pip requirements, `runyard.curated` set, no Python pin.
    EnvironmentNotFound lists the table for a name not in it."""
    entry = curated(name)
    if entry is None:
        raise EnvironmentNotFound(
            f"{name!r} is not a curated environment runyard knows. The curated environments are:\n"
            f"{describe_table()}\nOr register your own: Environment.from_pip_requirements('my-env', "
            "'requirements.txt').register(ws)."
        )
    return {
        "name": name,
        "version": "1",
        "environmentVariables": {},
        "python": {
            "userManagedDependencies": False,
            "interpreterPath": "python",
            "condaDependenciesFile": None,
            "baseCondaEnvironment": None,
            "condaDependencies": {
                "name": "project_environment",
                "dependencies": [{"pip": list(entry.requirements)}],
                "channels": ["conda-forge"],
            },
        },
        "runyard": {"curated": name, "source": None},
    }

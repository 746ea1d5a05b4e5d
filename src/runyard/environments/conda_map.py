"""Conda package specs -> pip requirements, for the conda packages PyPI also has; pip list lines (options,
wheels named by path) -> what uv is given.

runyard does not use conda: a v1 environment's conda dependencies are turned into pip requirements where
PyPI publishes the same project, under a name this table knows. Everything else (CUDA toolkits, MKL, compilers,
MPI builds) only conda has; `conda_to_pip` refuses those and `plan.py` lists them all in one error, because
installing "something similar" from PyPI would make a different environment than the one the user wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from runyard.errors import EnvironmentDefinitionError

#: Conda package name -> PyPI project name. Mostly identical; the renames are the ones v1 samples hit.
CONDA_TO_PYPI: dict[str, str] = {
    name: name
    for name in (  # noqa: SIM905 - a table reads better as words
        "adlfs altair attrs azure-storage-blob beautifulsoup4 bokeh boto3 botocore bottleneck catboost certifi "
        "click cloudpickle cython dask dill distributed fastapi flask fsspec gcsfs gensim grpcio h5py hyperopt "
        "imageio ipykernel ipython ipywidgets jinja2 joblib jupyter keras lightgbm lxml matplotlib mlflow "
        "networkx nltk notebook numba numexpr numpy onnx onnxruntime openpyxl optuna packaging pandas pillow "
        "plotly protobuf psutil psycopg2 py4j pyarrow pydantic pyodbc pyspark pytest python-dateutil pytz "
        "regex requests s3fs scikit-image scikit-learn scipy seaborn setuptools shap six spacy sqlalchemy "
        "statsmodels sympy tabulate tensorboard tensorflow tokenizers toolz torchaudio torchvision tqdm "
        "transformers tzdata urllib3 uvicorn wheel xgboost xlrd"
    ).split()
} | {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "matplotlib-base": "matplotlib",
    "pytables": "tables",
    "opencv": "opencv-python",
    "py-opencv": "opencv-python",
    "python-graphviz": "graphviz",
    "pyyaml": "PyYAML",
    "yaml": "PyYAML",
    "pytorch-lightning": "pytorch-lightning",
    "lightning": "lightning",
    "tensorflow-gpu": "tensorflow",
    "msgpack-python": "msgpack",
    "py-lightgbm": "lightgbm",
}

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)\s*(.*)$")
_PIP_OPERATOR = re.compile(r"^(==|>=|<=|!=|~=|>|<)")


@dataclass(frozen=True)
class CondaSpec:
    """One conda dependency as runyard reads it: its name, and either the pip requirement it becomes or
    the Python version it requests; `note` says what was changed on the way (for the build log)."""

    name: str
    pip: str | None  # the pip requirement (None for python, pip, and packages only conda has)
    python: str | None  # the version spec of a `python` dependency ("3.10.18", ">=3.9", "")
    note: str | None
    conda_only: bool = False


class CondaSpecError(ValueError):
    """A conda spec runyard cannot read (plan.py turns it into an EnvironmentDefinitionError)."""


def _version_spec(text: str) -> tuple[str, str | None]:
    """A conda version part ("=1.21", "=1.21.2=py38_0", "==1.2", ">=1.2,<2", " 1.21.*") -> (pip specifier,
    the build string that was dropped or None)."""
    text = text.strip()
    if not text:
        return "", None
    if text.startswith("=") and not text.startswith("=="):
        version, _, build = text[1:].partition("=")
        return _fuzzy(version), build or None
    if _PIP_OPERATOR.match(text):
        if "|" in text:
            raise CondaSpecError("conda's '|' (either version) has no pip equivalent: pick one version")
        tokens = text.split()
        last = tokens[-1] if len(tokens) > 1 else ""
        if last and not _PIP_OPERATOR.match(last) and not tokens[-2].endswith(","):
            return "".join(tokens[:-1]), last
        return "".join(tokens), None
    # "1.21.* py38_0": conda's space-separated form
    version, _, build = text.partition(" ")
    return _fuzzy(version), build.strip() or None


def _fuzzy(version: str) -> str:
    """conda's `=1.21` means any 1.21.x; a version with three or more parts is taken as exact."""
    version = version.strip()
    if "|" in version or "," in version:
        raise CondaSpecError("conda's '|'/',' version lists have no pip equivalent: pick one version")
    if version.endswith("*"):
        return "==" + version.rstrip("*").rstrip(".") + ".*"
    if version.count(".") < 2:
        return f"=={version}.*"
    return f"=={version}"


def _split_brackets(spec: str) -> str:
    """`numpy[version='>=1.2']` -> `numpy>=1.2` (conda's bracket form; other bracket keys are refused)."""
    match = re.match(r"^([^\[]+)\[(.*)\]$", spec)
    if not match:
        return spec
    name, inner = match.groups()
    version = re.fullmatch(r"""\s*version\s*=\s*['"]?([^'"]+)['"]?\s*""", inner)
    if not version:
        raise CondaSpecError(f"only [version=...] is understood in brackets, not [{inner}]")
    value = version.group(1)
    return name + (value if _PIP_OPERATOR.match(value) else "=" + value)


def conda_to_pip(spec: str) -> CondaSpec:
    """Read one conda dependency string. Raises CondaSpecError when it cannot be read at all."""
    text = spec.strip()
    if "::" in text:  # conda-forge::numpy, pytorch/linux-64::pytorch
        text = text.split("::", 1)[1]
    text = _split_brackets(text)
    match = _NAME.match(text)
    if not match:
        raise CondaSpecError("not a conda package spec")
    name, rest = match.group(1), match.group(2)
    key = name.lower()
    if key == "python":
        pip_spec, _build = _version_spec(rest)
        return CondaSpec(name="python", pip=None, python=pip_spec, note=None)
    if key == "pip":
        return CondaSpec(
            name="pip", pip=None, python=None, note=f"conda {spec}: dropped (uv installs the packages)"
        )
    pypi = CONDA_TO_PYPI.get(key)
    if pypi is None:
        return CondaSpec(name=name, pip=None, python=None, note=None, conda_only=True)
    pip_spec, build = _version_spec(rest)
    requirement = pypi + pip_spec
    note = f"conda {spec} -> pip {requirement}"
    if build:
        note += f" (conda build string {build!r} dropped)"
    return CondaSpec(name=name, pip=requirement, python=None, note=note)


#: Options v1 adds to every pip list it writes; they point at PyPI, which is the default anyway.
_V1_DEFAULT_OPTIONS = {
    "--find-links https://pypi.python.org/simple/index.html",
    "--extra-index-url https://pypi.python.org/simple",
}
#: pip options an environment's pip list may carry, passed to uv as given (short forms spelled out).
_OPTIONS_WITH_VALUE = {
    "--index-url": "--index-url",
    "-i": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "--find-links": "--find-links",
    "-f": "--find-links",
    "--no-binary": "--no-binary",
    "--only-binary": "--only-binary",
    "--trusted-host": "--trusted-host",
}
_FLAG_OPTIONS = {"--pre", "--no-index", "--require-hashes"}
_IGNORED_OPTIONS = {"--prefer-binary": "uv prefers wheels already"}


def pip_line_requirement(line: str) -> str:
    """A wheel named by path or URL (add_private_pip_wheel returns a path) -> 'name @ file:///...'."""
    location, sep, marker = line.partition(";")
    location = location.strip()
    if not location.endswith(".whl") or "@" in location.split("://")[0]:
        return line
    try:
        name = parse_wheel_filename(location.rsplit("/", 1)[-1])[0]
    except InvalidWheelFilename:
        return line
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        location = Path(location).expanduser().resolve().as_uri()
    return f"{name} @ {location}" + (f" ;{marker}" if sep else "")


def pip_option(name: str, line: str) -> str | None:
    """A pip option line -> its normalised form for uv, None when dropped. Raises for unsupported ones."""
    match = re.match(r"^(-{1,2}[A-Za-z][A-Za-z-]*)(?:[= ]\s*(.*))?$", line)
    head, value = (match.group(1), (match.group(2) or "").strip()) if match else (line, "")
    if head in _OPTIONS_WITH_VALUE and value:
        normal = f"{_OPTIONS_WITH_VALUE[head]} {value}"
        return None if normal in _V1_DEFAULT_OPTIONS else normal
    if head in _FLAG_OPTIONS and not value:
        return head
    if head in _IGNORED_OPTIONS:
        return None
    raise EnvironmentDefinitionError(
        f"Environment {name!r}: the pip option line {line!r} is not supported in an environment's pip list. "
        "List the packages themselves (no -r/-c/-e lines); the options runyard passes on are "
        f"{', '.join(sorted({*_OPTIONS_WITH_VALUE.values(), *_FLAG_OPTIONS}))}."
    )

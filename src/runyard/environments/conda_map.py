"""Conda package specs -> pip requirements, for the conda packages PyPI also has; pip list lines (options,
wheels named by path) -> what uv is given; the local files a definition names, read safely.

runyard does not use conda: a v1 environment's conda dependencies are turned into pip requirements where
PyPI publishes the same project, under a name this table knows. Everything else (CUDA toolkits, MKL, compilers,
MPI builds) only conda has; `conda_to_pip` refuses those and `plan.py` lists them all in one error, because
installing "something similar" from PyPI would make a different environment than the one the user wrote.

A definition is read from the registry or a graph, possibly written by someone else, and planned in the
scheduler's main thread: the files it names (condaDependenciesFile, runyard.source) are read only when they
are small regular files (`read_definition_file`, never blocking on a FIFO or a device), and the local wheels
and folders it installs from enter the plan hash by content (`local_fingerprint`), so a wheel replaced at
the same path is a new environment rather than the old build.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from runyard.environments.redact import redact_urls
from runyard.errors import EnvironmentDefinitionError
from runyard.store.env_rules import MAX_DEFINITION_BYTES

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


@dataclass(frozen=True)
class AzuremlBrings:
    """What a v1 azureml-* package installed besides the SDK itself, that a job imports directly."""

    requirements: tuple[str, ...]  # added to the environment's requirements
    what: str  # for the note: "its mlflow client"
    covered_by: tuple[str, ...]  # requirements that, when the environment lists one, bring it already


#: azureml-* packages runyard stands in for but whose third-party dependencies jobs import themselves.
#: The rest bring nothing a job imports that runyard lacks (azureml-defaults and azureml-core: the SDK).
AZUREML_BRINGS: dict[str, AzuremlBrings] = {
    "azureml-mlflow": AzuremlBrings(("mlflow-skinny",), "its mlflow client", ("mlflow", "mlflow-skinny")),
}
#: Those that bring something only with a `[pandas...]` extra: v1's azureml-dataprep/-dataset-runtime pinned
#: pandas below 3 and v1 samples rely on it (the iris sample's `result['variety'] = pred`, a 2-D pred, fails
#: in pandas 3); runyard's layer has the pandas runyard runs with (pandas>=2.1), maybe 3.
_PANDAS_BELOW_3 = AzuremlBrings(("pandas<3",), "its pandas (v1 pinned pandas below 3)", ("pandas",))
AZUREML_BRINGS_WITH_PANDAS = {"azureml-dataprep": _PANDAS_BELOW_3, "azureml-dataset-runtime": _PANDAS_BELOW_3}


def azureml_brings(requirement: str) -> AzuremlBrings | None:
    """What the azureml-* pip requirement line `requirement` (extras included) brought in v1 that a job
    imports itself, or None."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    name = canonicalize_name(req.name)
    if any("pandas" in extra.lower() for extra in req.extras) and name in AZUREML_BRINGS_WITH_PANDAS:
        return AZUREML_BRINGS_WITH_PANDAS[name]
    return AZUREML_BRINGS.get(name)


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
#: What an option's value may not hold: it must stay one argument when build.py splits the option.
_NOT_ONE_TOKEN = re.compile(r"[\s\"'\\\x00-\x1f\x7f]")


#: pip's version-control requirement lines: `git+https://host/repo.git@v1.0#egg=name` (also hg, svn, bzr).
_VCS = re.compile(r"^(?:git|hg|svn|bzr)\+[A-Za-z][A-Za-z0-9+.-]*://", re.IGNORECASE)
_EGG = re.compile(r"^egg=([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[^\]]*\])?)$")


def _vcs_requirement(location: str) -> str | None:
    """`git+URL#egg=NAME[&subdirectory=x]` -> `NAME @ git+URL[#subdirectory=x]` (PEP 508, what uv reads);
    None when there is no `#egg=`."""
    url, _, fragment = location.partition("#")
    params = [p for p in fragment.split("&") if p]
    eggs = [m.group(1) for p in params if (m := _EGG.match(p))]
    if len(eggs) != 1:
        return None
    rest = [p for p in params if not p.startswith("egg=")]
    return f"{eggs[0]} @ {url}" + (f"#{'&'.join(rest)}" if rest else "")


def vcs_problem(line: str) -> str | None:
    """Why a version-control requirement line cannot be read (None when it is not one, or is fine)."""
    location = line.partition(";")[0].strip()
    if not _VCS.match(location) or _vcs_requirement(location) is not None:
        return None
    return (
        "a version-control requirement needs the package's name: add '#egg=NAME' to the URL "
        f"({location.split('#')[0]}#egg=NAME) or write 'NAME @ {location.split('#')[0]}'"
    )


def pip_line_requirement(line: str) -> str:
    """A wheel named by path or URL (add_private_pip_wheel returns a path) -> 'name @ file:///...'; a
    version-control line `git+URL#egg=name` (pip, uv and v1 accept it) -> 'name @ git+URL'."""
    location, sep, marker = line.partition(";")
    location = location.strip()
    if _VCS.match(location):
        named = _vcs_requirement(location)
        return line if named is None else named + (f" ;{marker}" if sep else "")
    if not location.endswith(".whl") or "@" in location.split("://")[0]:
        return line
    try:
        name = parse_wheel_filename(location.rsplit("/", 1)[-1])[0]
    except InvalidWheelFilename:
        return line
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        location = Path(location).expanduser().resolve().as_uri()
    return f"{name} @ {location}" + (f" ;{marker}" if sep else "")


def _one_token(name: str, line: str, value: str) -> str:
    """An option's value is one argument for uv: no whitespace, quote, backslash or control character, and
    not another option. Anything more ("DIR --target /anywhere", an unbalanced quote) would become extra
    uv options once split, so it is refused here, when planned, naming the line."""
    bad = _NOT_ONE_TOKEN.search(value)
    if bad is None and not value.startswith("-"):
        return value
    why = f"holds {bad.group()!r}" if bad is not None else "starts with '-'"
    raise EnvironmentDefinitionError(
        f"Environment {name!r}: the value of the pip option line {redact_urls(line)!r} {why}; an option's "
        "value must be one word (a URL or a path without spaces or quotes), e.g. "
        "'--extra-index-url https://pkgs.example/simple'. Write each option on a line of its own."
    )


def pip_option(name: str, line: str) -> str | None:
    """A pip option line -> its normalised form for uv ("--name value" or "--flag"), None when dropped.
    The value is guaranteed to be one token (see `_one_token`), so `shlex.split` of the result is exactly
    [name, value]. Raises EnvironmentDefinitionError for unsupported options and values."""
    match = re.match(r"^(-{1,2}[A-Za-z][A-Za-z-]*)(?:[= ]\s*(.*))?$", line, re.DOTALL)
    head, value = (match.group(1), (match.group(2) or "").strip()) if match else (line, "")
    if head in _OPTIONS_WITH_VALUE and value:
        normal = f"{_OPTIONS_WITH_VALUE[head]} {_one_token(name, line, value)}"
        return None if normal in _V1_DEFAULT_OPTIONS else normal
    if head in _FLAG_OPTIONS and not value:
        return head
    if head in _IGNORED_OPTIONS:
        return None
    raise EnvironmentDefinitionError(
        f"Environment {name!r}: the pip option line {redact_urls(line)!r} is not supported in an environment's pip list. "
        "List the packages themselves (no -r/-c/-e lines); the options runyard passes on are "
        f"{', '.join(sorted({*_OPTIONS_WITH_VALUE.values(), *_FLAG_OPTIONS}))}."
    )


# -- local files a definition names ------------------------------------------------------------------------

#: How many files of a local folder (a --find-links folder, a source tree) enter its fingerprint.
MAX_LISTED_FILES = 5000
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_digests: dict[tuple[object, ...], str] = {}


def _open_regular(path: str | Path) -> tuple[int, os.stat_result]:
    """An fd of `path` opened without blocking (O_NONBLOCK: a FIFO without writer does not wait), and its
    stat; OSError when it is not a regular file. ValueError for a path holding NUL."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd, info


def read_definition_file(path: str) -> str:
    """The UTF-8 text of a file a definition names, when it is a regular file of at most
    MAX_DEFINITION_BYTES (the bound the store puts on a whole definition). Raises OSError or ValueError
    (NUL in the path, too large, not UTF-8) saying what is wrong."""
    fd, info = _open_regular(Path(path).expanduser())
    try:
        if info.st_size > MAX_DEFINITION_BYTES:
            raise ValueError(f"it is {info.st_size:,} bytes; at most {MAX_DEFINITION_BYTES:,} are read")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_DEFINITION_BYTES:  # a file that grows while read (or lies in st_size) is bounded
            chunk = os.read(fd, MAX_DEFINITION_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_DEFINITION_BYTES:
        raise ValueError(f"it is over {MAX_DEFINITION_BYTES:,} bytes")
    return b"".join(chunks).decode("utf-8")


def local_path(location: str) -> Path | None:
    """The local path a requirement URL or option value names (`file:` URL or a path), None for a remote
    URL."""
    if _URL.match(location):
        parts = urlsplit(location)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            return None
        return Path(url2pathname(parts.path))
    return Path(location).expanduser().absolute()


def _file_digest(path: Path, info: os.stat_result) -> str:
    """sha256 of a regular file, memoised by (path, inode, size, mtime, ctime): planning stats it once
    and reads it again only when it changed (ctime cannot be set back by `touch`)."""
    key = (str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    digest = _digests.get(key)
    if digest is None:
        fd, _info = _open_regular(path)
        with os.fdopen(fd, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        if len(_digests) > 1024:
            _digests.clear()
        _digests[key] = digest
    return digest


def _listing_digest(folder: Path) -> str:
    """sha256 of a folder's file listing (relative names, sizes, mtimes), hidden entries and __pycache__
    left out, at most MAX_LISTED_FILES files: a wheel added, removed or replaced changes it."""
    rows: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if name.startswith(".") or len(rows) >= MAX_LISTED_FILES:
                continue
            full = os.path.join(root, name)
            try:
                info = os.stat(full)
            except OSError:
                continue
            rows.append(f"{os.path.relpath(full, folder)}\t{info.st_size}\t{info.st_mtime_ns}")
        if len(rows) >= MAX_LISTED_FILES:
            break
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def local_fingerprint(location: str) -> str | None:
    """What a local wheel, folder or file named by `location` holds, for the plan hash: "sha256:<hex>" of
    a file, "listing:<hex>" of a folder, "missing" when nothing is there. None when `location` is remote."""
    path = local_path(location)
    if path is None:
        return None
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            return "listing:" + _listing_digest(path)
        return "sha256:" + _file_digest(path, info)
    except (OSError, ValueError):
        return "missing"

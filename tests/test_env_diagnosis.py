"""A job that fails on an import: the diagnosis names the module, its PyPI package, the environment, whether
the package is in its requirements, the versions there and where the job was submitted, and the fix.

The logs are real: each case runs a real script with a real interpreter (a virtual environment made here,
with a package "installed" at an old version by writing its files and metadata as pip would) and feeds the
output to `diagnose_failure`. The studio and the CLI are checked against a real server and a real
`runyard` subprocess. The end-to-end case (a step failing in a built environment) is in the engine tests."""

from __future__ import annotations

import subprocess
import sys
import time
import venv
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import invoke_cli
from runyard import Workspace
from runyard.environments.build import PreparedEnvironment
from runyard.environments.diagnosis import KNOWN_PACKAGES, diagnose_failure, diagnosis_rows
from runyard.environments.plan import BuildPlan
from runyard.store import RunRecord
from server_process import running_server

OLD_PACKAGING = "20.0"  # the version the test environment holds; this interpreter has a newer one
HERE_PACKAGING = metadata.version("packaging")
HERE_YAML = metadata.version("pyyaml")


def prepared(
    location: Path | str,
    python: str,
    requirements: tuple[str, ...] = ("tabulate==0.9.0",),
    *,
    name: str = "train-env",
    user_managed: bool = False,
) -> PreparedEnvironment:
    """A PreparedEnvironment as the build hands it to the job supervisor (contract §3)."""
    plan = BuildPlan(
        name=name,
        hash="" if user_managed else "abc123456789" + "0" * 52,
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        interpreter=python if user_managed else sys.executable,
        requirements=requirements,
        pip_options=(),
        satisfied_by_runyard=(),
        notes=(),
        user_managed=user_managed,
    )
    return PreparedEnvironment(
        plan=plan,
        python=python,
        built=False,
        build_log="",
        location="" if user_managed else str(location),
        seconds=0.0,
        waited=False,
    )


@pytest.fixture(scope="module")
def old_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real virtual environment (no pip: nothing to download) holding packaging 20.0 without its
    `version` module, installed the way pip leaves a wheel: files plus a dist-info folder."""
    root = tmp_path_factory.mktemp("diag") / "env"
    venv.create(root, with_pip=False)
    site = next(root.glob("lib/python*/site-packages"))
    (site / "packaging").mkdir()
    (site / "packaging" / "__init__.py").write_text('"""An old packaging without version.py."""\n')
    info = site / f"packaging-{OLD_PACKAGING}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: packaging\nVersion: {OLD_PACKAGING}\n")
    (info / "RECORD").write_text(f"packaging/__init__.py,,\npackaging-{OLD_PACKAGING}.dist-info/METADATA,,\n")
    # a folder a .pth adds after site-packages, as runyard's layer of its own dependencies is added
    layer = root.parent / "layer"
    (layer / "oldlib-1.0.dist-info").mkdir(parents=True)
    (layer / "oldlib.py").write_text("NAME = 'old'\n")
    (layer / "oldlib-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: oldlib\nVersion: 1.0\n"
    )
    (layer / "oldlib-1.0.dist-info" / "RECORD").write_text("oldlib.py,,\n")
    (site / "_runyard_layer.pth").write_text(f"{layer}\n")
    return root, str(root / "bin" / "python")


def job_log(python: str, code: str, cwd: Path | None = None) -> list[str]:
    """Run a job's script with a real interpreter; its output as the driver log tail the supervisor reads."""
    done = subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0, done.stdout
    return (done.stdout + done.stderr).splitlines()


def test_a_package_missing_from_the_environment_is_named_with_the_fix(old_env) -> None:
    root, python = old_env
    log = job_log(python, "import skimage.filters")
    assert log[-1] == "ModuleNotFoundError: No module named 'skimage'"
    d = diagnose_failure(log, prepared(root, python))
    assert d is not None
    assert d["kind"] == "missing-module" and d["module"] == "skimage" and d["package"] == "scikit-image"
    assert d["environment"] == "train-env" and d["environmentHash"].startswith("abc123456789")
    assert d["inRequirements"] is False and d["environmentVersion"] is None
    assert d["submittedVersion"] is None  # not installed where the tests run either
    assert d["fix"] == "env.python.conda_dependencies.add_pip_package('scikit-image')"
    assert d["summary"].startswith(
        "The job failed importing 'skimage': package scikit-image is not in environment 'train-env' "
        "(hash abc123456789; its requirements: tabulate==0.9.0). "
        "The interpreter that submitted the job does not have scikit-image either. Fix: "
    )


def test_the_version_where_the_job_was_submitted_goes_into_the_fix(old_env) -> None:
    root, python = old_env
    d = diagnose_failure(job_log(python, "import yaml"), prepared(root, python))
    assert d is not None and d["package"] == "pyyaml" and d["submittedVersion"] == HERE_YAML
    assert d["fix"] == f"env.python.conda_dependencies.add_pip_package('pyyaml=={HERE_YAML}')"
    assert f"The interpreter that submitted the job has pyyaml {HERE_YAML}." in d["summary"]


@pytest.mark.parametrize(
    ("module", "package"),
    [
        ("cv2", "opencv-python"),
        ("PIL", "pillow"),
        ("bs4", "beautifulsoup4"),
        ("skimage", "scikit-image"),
        ("dateutil", "python-dateutil"),
        ("attr", "attrs"),
    ],
)
def test_import_names_map_to_their_pypi_package(old_env, module: str, package: str) -> None:
    """Installed here (PIL, dateutil, attr) the metadata answers; otherwise the table does; both agree."""
    root, python = old_env
    d = diagnose_failure(job_log(python, f"import {module}"), prepared(root, python))
    assert d is not None and d["module"] == module and d["package"] == package
    assert d["fix"].startswith(f"env.python.conda_dependencies.add_pip_package('{package}")
    assert module in KNOWN_PACKAGES


def test_an_old_version_that_lacks_a_name_is_an_import_error_with_both_versions(old_env) -> None:
    root, python = old_env
    log = job_log(python, "from packaging import version")
    assert log[-1].startswith("ImportError: cannot import name 'version' from 'packaging' (")
    env = prepared(root, python, ("packaging==20.0", "tabulate==0.9.0"))
    d = diagnose_failure(log, env)
    assert d is not None and d["kind"] == "import-error" and d["package"] == "packaging"
    assert d["inRequirements"] is True and d["listedAs"] == "packaging==20.0"
    assert d["environmentVersion"] == OLD_PACKAGING and d["submittedVersion"] == HERE_PACKAGING
    assert (
        d["fix"] == f"pin 'packaging=={HERE_PACKAGING}' in environment 'train-env' (it has {OLD_PACKAGING})"
    )
    assert "'version' from 'packaging': packaging 20.0 in environment 'train-env'" in d["summary"]
    # a missing submodule of an installed package is the same version difference
    sub = diagnose_failure(job_log(python, "import packaging.version"), env)
    assert sub is not None and sub["kind"] == "missing-module" and sub["module"] == "packaging"
    assert sub["environmentVersion"] == OLD_PACKAGING and sub["fix"] == d["fix"]
    assert sub["summary"].startswith("The job failed importing 'packaging.version': environment 'train-env'")


def test_packages_a_pth_folder_adds_count_as_the_environments(old_env) -> None:
    root, python = old_env
    d = diagnose_failure(job_log(python, "from oldlib import feature"), prepared(root, python))
    assert d is not None and d["kind"] == "import-error" and d["package"] == "oldlib"
    assert d["environmentVersion"] == "1.0" and d["submittedVersion"] is None
    assert (
        d["fix"] == "pin a version of oldlib that provides 'feature' in environment 'train-env' (it has 1.0)"
    )


def test_a_built_environment_with_runyards_layer(env_cache: Path) -> None:
    """A real build (no requirements: nothing to download) by prepare_environment: packages runyard's layer
    lends the environment (PyYAML) have the environment's version; others are missing from it."""
    from runyard.environments.build import prepare_environment
    from runyard.environments.plan import plan_environment

    conda = {"name": "x", "dependencies": [f"python={sys.version_info.major}.{sys.version_info.minor}"]}
    plan = plan_environment({"name": "diag-env", "python": {"condaDependencies": conda}})
    env = prepare_environment(plan)
    d = diagnose_failure(job_log(env.python, "import sklearn"), env)
    assert d is not None and d["package"] == "scikit-learn" and d["environmentHash"] == plan.hash
    assert d["summary"].startswith(
        f"The job failed importing 'sklearn': package scikit-learn is not in environment 'diag-env' "
        f"(hash {plan.hash[:12]}; its requirements: none)."
    )
    typo = diagnose_failure(job_log(env.python, "from yaml import safe_lod"), env)
    assert typo is not None and typo["kind"] == "import-error"
    assert typo["environmentVersion"] == HERE_YAML == typo["submittedVersion"]
    assert f"The interpreter that submitted the job has pyyaml {HERE_YAML} too." in typo["summary"]
    assert typo["fix"] == (
        f"pin a version of pyyaml that provides 'safe_lod' in environment 'diag-env' (it has {HERE_YAML})"
    )


def test_version_conflicts_from_pkg_resources_and_importlib_metadata() -> None:
    """pkg_resources' own VersionConflict, raised for real in this interpreter (it has setuptools)."""
    log = job_log(sys.executable, "import pkg_resources; pkg_resources.require('packaging>=999')")
    assert "VersionConflict" in log[-1]
    here = prepared("", sys.executable, (), name="", user_managed=True)
    d = diagnose_failure(log, here)
    assert d is not None and d["kind"] == "version-conflict" and d["package"] == "packaging"
    assert d["requirement"] == "packaging>=999" and d["environmentVersion"] == HERE_PACKAGING
    assert d["fix"].endswith("-m pip install 'packaging>=999'")  # this version does not satisfy it
    assert d["summary"].startswith(
        f"The job failed on a version conflict: it needs packaging>=999, but the interpreter {sys.executable}"
    )
    gone = job_log(sys.executable, "from importlib.metadata import version; version('no-such-dist-xyz')")
    d = diagnose_failure(gone, here)
    assert d is not None and d["kind"] == "missing-module" and d["package"] == "no-such-dist-xyz"


def test_version_checks_libraries_raise(old_env) -> None:
    """The messages libraries raise when a dependency's version is wrong (transformers' dependency check,
    and the "requires X but Y is installed" form), raised by a real script."""
    root, python = old_env
    env = prepared(root, python)
    found = (
        "raise ImportError('tokenizers>=0.11.1,!=0.11.3,<0.14 is required for a normal functioning of "
        "this module, but found tokenizers==0.14.1.')"
    )
    d = diagnose_failure(job_log(python, found), env)
    assert d is not None and d["kind"] == "version-conflict" and d["package"] == "tokenizers"
    assert d["environmentVersion"] == "0.14.1" and d["requirement"] == "tokenizers>=0.11.1,!=0.11.3,<0.14"
    assert d["fix"] == "pin 'tokenizers>=0.11.1,!=0.11.3,<0.14' in environment 'train-env' (it has 0.14.1)"
    installed = "raise RuntimeError('mylib 2.0 requires packaging>=21 but packaging 20.0 is installed')"
    d = diagnose_failure(job_log(python, installed), env)
    assert d is not None and d["package"] == "packaging" and d["environmentVersion"] == OLD_PACKAGING
    assert (
        d["fix"] == f"pin 'packaging=={HERE_PACKAGING}' in environment 'train-env' (it has {OLD_PACKAGING})"
    )
    rows = dict(diagnosis_rows(d))
    assert rows["Problem"] == "version conflict" and rows["Required by the job"] == "packaging>=21"


def test_a_user_managed_interpreter_is_named_and_fixed_with_pip(old_env) -> None:
    _, python = old_env
    d = diagnose_failure(job_log(python, "import yaml"), prepared("", python, (), name="", user_managed=True))
    assert d is not None and d["userManaged"] is True and d["interpreter"] == python
    assert d["fix"] == f"{python} -m pip install pyyaml=={HERE_YAML}"
    assert f"package pyyaml is not in the interpreter {python} (the job names no environment" in d["summary"]
    rows = dict(diagnosis_rows(d))
    assert (
        rows["Environment"] == f"{python} (no environment)" and rows["Version where submitted"] == HERE_YAML
    )
    named = diagnose_failure(
        job_log(python, "import yaml"), prepared("", python, (), name="um", user_managed=True)
    )
    assert (
        named is not None and f"the interpreter {python} (environment 'um': user-managed" in named["summary"]
    )
    assert dict(diagnosis_rows(named))["Environment"] == f"um: {python} (user-managed)"
    # the submitting interpreter itself: no "the interpreter that submitted the job" sentence
    mine = diagnose_failure(
        job_log(sys.executable, "import skimage"),
        prepared("", sys.executable, (), name="", user_managed=True),
    )
    assert mine is not None and mine["fix"] == f"{sys.executable} -m pip install scikit-image"
    assert "submitted the job" not in mine["summary"]


def test_the_standard_library_and_the_jobs_own_code_get_no_package_advice(old_env, tmp_path: Path) -> None:
    root, python = old_env
    env = prepared(root, python)
    assert diagnose_failure(job_log(python, "from json import nope"), env) is None
    assert diagnose_failure(job_log(python, "raise ValueError('bad input')"), env) is None
    (tmp_path / "helpers.py").write_text("X = 1\n")
    assert diagnose_failure(job_log(python, "from helpers import nope", cwd=tmp_path), env) is None
    # a module no installed package provides: most likely a file left out of the source directory
    d = diagnose_failure(job_log(python, "import data_utils", cwd=tmp_path), env)
    assert d is not None and d["package"] is None and d["inRequirements"] is False
    assert (
        "no installed package provides 'data_utils'; is it a file missing from the source directory?"
        in d["summary"]
    )
    assert d["fix"].startswith("add data_utils.py (or the folder data_utils/) to the source directory")


def test_only_the_exception_that_ended_the_job_counts(old_env) -> None:
    root, python = old_env
    env = prepared(root, python)
    survived = "try:\n import sklearn\nexcept ImportError:\n print('no sklearn')\nraise KeyError('x')"
    assert diagnose_failure(job_log(python, survived), env) is None
    chained = "try:\n import sklearn\nexcept ImportError as e:\n raise RuntimeError('install sklearn') from e"
    d = diagnose_failure(job_log(python, chained), env)
    assert d is not None and d["package"] == "scikit-learn"


def _failed_run(ws: Workspace, diagnosis: dict[str, Any]) -> str:
    exp = ws.store.get_or_create_experiment("diag")
    ws.store.create_run(
        RunRecord(
            run_id="diag_1",
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Running",
            run_type="azureml.scriptrun",
            created_time=time.time(),
        )
    )
    message = diagnosis["summary"] + "\nProcess exited with code 1.\nLast lines of 70_driver_log.txt:\nboom"
    ws.store.set_run_status(
        "diag_1", "Failed", error={"code": "UserError", "message": message, "diagnosis": diagnosis}
    )
    return "diag_1"


def test_the_studio_and_runs_show_display_the_diagnosis(old_env, tmp_path: Path) -> None:
    root, python = old_env
    d = diagnose_failure(job_log(python, "import yaml"), prepared(root, python))
    assert d is not None
    ws = Workspace.create(tmp_path / "ws")
    run_id = _failed_run(ws, d)
    fix = f"env.python.conda_dependencies.add_pip_package(&#39;pyyaml=={HERE_YAML}&#39;)"
    with running_server(ws.path, tmp_path / "server.log") as server:
        page = httpx.get(f"{server.url}/runs/{run_id}").text
    block = page[page.index("Why it failed: missing module") : page.index("error-box")]
    for cell in ("yaml", "pyyaml", "train-env (hash abc123456789)", "not installed", HERE_YAML, fix):
        assert f"<td>{cell}</td>" in block, cell
    shown = invoke_cli("--workspace", str(ws.path), "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    start = lines.index("Why it failed: missing module")
    assert lines[start + 1 : start + 4] == [
        "  Module: yaml",
        "  Package: pyyaml",
        "  Environment: train-env (hash abc123456789)",
    ]
    assert f"  Fix: env.python.conda_dependencies.add_pip_package('pyyaml=={HERE_YAML}')" in lines


def test_numpy_abi_conflicts_are_version_conflicts(old_env) -> None:
    """pyarrow 26 with NumPy 1.x, and an extension built for NumPy 1.x under NumPy 2.x (NumPy's warning
    comes before a traceback whose last line varies), raised by a real script."""
    root, python = old_env
    env = prepared(root, python, ("numpy==1.26.4",))
    newer = "raise ImportError('pyarrow requires NumPy 2.0 or newer, found 1.26.4')"
    d = diagnose_failure(job_log(python, newer), env)
    assert d is not None and d["kind"] == "version-conflict" and d["package"] == "numpy"
    assert d["requirement"] == "numpy>=2.0" and d["environmentVersion"] == "1.26.4"
    assert d["fix"].endswith("or pin a pyarrow version built for NumPy 1.26.4")
    older = (
        "import sys; print('A module that was compiled using NumPy 1.x cannot be run in NumPy 2.x as it may "
        "crash.', file=sys.stderr); raise ImportError('numpy.core.multiarray failed to import')"
    )
    d = diagnose_failure(job_log(python, older), env)
    assert d is not None and d["kind"] == "version-conflict" and d["requirement"] == "numpy<2"
    assert "it needs numpy<2" in d["summary"]


def test_a_missing_runyard_or_azureml_is_never_a_file_to_add(old_env, tmp_path: Path) -> None:
    """A job's launcher under an interpreter without runyard (the real v1_imports.py, run by path as jobs
    run it), and a part of the v1 SDK runyard lacks: no "add azureml.py to the source directory"."""
    _, python = old_env
    script = tmp_path / "job.py"
    script.write_text("from azureml.core import Run\n")
    launcher = str(Path(__file__).parents[1] / "src" / "runyard" / "v1_imports.py")
    done = subprocess.run(
        [python, "-u", "-P", launcher, str(script)], capture_output=True, text=True, timeout=60
    )
    log = done.stderr.splitlines()
    assert done.returncode != 0 and f"runyard is not installed in {python}" in log[-1]
    d = diagnose_failure(log, prepared("", python, (), name="system", user_managed=True))
    assert d is not None and d["module"] == "runyard" and ".py" not in d["fix"]
    assert d["fix"].startswith(f"{python} -m pip install runyard")
    assert "runyard is not importable in the interpreter" in d["summary"]
    lacking = diagnose_failure(
        ["ModuleNotFoundError: No module named 'azureml.train.hyperdrive': runyard.v1 has no module"],
        prepared("", sys.executable, (), name="", user_managed=True),
    )
    assert lacking is not None and "azureml/train" not in lacking["fix"]
    assert "part of the Azure ML SDK v1 that runyard does not provide yet" in lacking["fix"]

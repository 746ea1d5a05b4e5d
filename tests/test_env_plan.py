"""Environment plans: conda specs mapped to pip, azureml-* satisfied by runyard, Python versions, the content
hash and the words for what changed. Fast and offline: nothing here builds or touches the network."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import runyard
from runyard.environments import interpreters
from runyard.environments.conda_map import conda_to_pip
from runyard.environments.plan import plan_environment, requirement_changes
from runyard.errors import EnvironmentDefinitionError

CURRENT = f"{sys.version_info.major}.{sys.version_info.minor}"


def definition(*dependencies: Any, name: str = "train-env", **extra: Any) -> dict[str, Any]:
    """v1's environment JSON with the given conda dependencies (strings and {"pip": [...]} items)."""
    return {
        "name": name,
        "version": None,
        "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
        "python": {
            "userManagedDependencies": False,
            "interpreterPath": "python",
            "condaDependenciesFile": None,
            "baseCondaEnvironment": None,
            "condaDependencies": {
                "name": "project_environment",
                "dependencies": list(dependencies),
                "channels": ["anaconda", "conda-forge"],
            },
        },
        "docker": {"enabled": False, "baseImage": "mcr.microsoft.com/azureml/base:latest"},
        **extra,
    }


@pytest.mark.parametrize(
    ("conda", "pip"),
    [
        ("numpy", "numpy"),
        ("numpy=1.21", "numpy==1.21.*"),
        ("numpy=1.21.2", "numpy==1.21.2"),
        ("numpy==1.21.2", "numpy==1.21.2"),
        ("numpy>=1.2", "numpy>=1.2"),
        ("numpy>=1.2,<2", "numpy>=1.2,<2"),
        ("numpy=1.21.*", "numpy==1.21.*"),
        ("conda-forge::scikit-learn=1.0", "scikit-learn==1.0.*"),
        ("pytorch=1.13.1", "torch==1.13.1"),
        ("py-xgboost=1.5.0=py38_0", "xgboost==1.5.0"),
        ("matplotlib-base", "matplotlib"),
        ("pytables", "tables"),
        ("opencv", "opencv-python"),
        ("python-graphviz", "graphviz"),
        ("pyyaml=6.0", "PyYAML==6.0.*"),
        ("numpy 1.21.2 py38_0", "numpy==1.21.2"),
    ],
)
def test_conda_specs_become_pip_requirements(conda: str, pip: str) -> None:
    assert conda_to_pip(conda).pip == pip


def test_a_conda_spec_maps_to_pip_and_the_notes_say_so() -> None:
    plan = plan_environment(
        definition(
            "python=3.11", "scikit-learn=1.0", "py-xgboost=1.5.0=py38_0", "pip=20.1.1", {"pip": ["tabulate"]}
        )
    )
    assert plan.requirements == ("scikit-learn==1.0.*", "tabulate", "xgboost==1.5.0")
    assert "conda scikit-learn=1.0 -> pip scikit-learn==1.0.*" in plan.notes
    assert any("build string 'py38_0' dropped" in note for note in plan.notes)
    assert any(note.startswith("conda pip=20.1.1: dropped") for note in plan.notes)
    assert not plan.user_managed and len(plan.hash) == 64


def test_packages_only_conda_has_are_one_error_listing_them_all() -> None:
    with pytest.raises(EnvironmentDefinitionError) as caught:
        plan_environment(definition("cudatoolkit=11.3", "numpy", "mkl", "libgcc", {"pip": ["six"]}))
    message = str(caught.value)
    for package in ("cudatoolkit=11.3", "mkl", "libgcc"):
        assert package in message
    assert "numpy" not in message.split(":")[1].split(".")[0]
    assert "pip packages" in message and "drop it" in message


def test_azureml_packages_are_satisfied_by_runyard_and_never_installed() -> None:
    plan = plan_environment(
        definition(
            "python=3.8.13",
            {
                "pip": [
                    "azureml-defaults",
                    "azureml-core==1.61.0",
                    "AzureML_Dataset_Runtime[fuse]",
                    "azureml",
                    "six",
                ]
            },
        )
    )
    assert plan.requirements == ("six",)
    assert plan.satisfied_by_runyard == (
        "azureml",
        "azureml-core==1.61.0",
        "azureml-dataset-runtime[fuse]",
        "azureml-defaults",
    )
    assert (
        f"azureml-defaults: provided by runyard {runyard.__version__} (not installed from the index)"
        in plan.notes
    )


def test_requirements_are_canonical_sorted_and_merged() -> None:
    plan = plan_environment(
        definition(
            "numpy", {"pip": ["Scikit_Learn==1.0", "numpy==1.26.4", "tabulate", "tabulate", "  # a comment"]}
        )
    )
    assert plan.requirements == ("numpy==1.26.4", "scikit-learn==1.0", "tabulate")
    same = plan_environment(definition({"pip": ["tabulate", "scikit-learn==1.0", "NumPy==1.26.4"]}))
    assert same.hash == plan.hash


def test_two_different_pins_of_one_package_are_an_error_naming_both() -> None:
    with pytest.raises(EnvironmentDefinitionError, match=r"numpy==1\.0 and numpy==2\.0"):
        plan_environment(definition({"pip": ["numpy==1.0", "numpy==2.0"]}))


def test_an_unreadable_pip_line_is_quoted_with_its_file_line(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# training\ntabulate==0.9.0\n\nnumpy==>1\n")
    bad = definition({"pip": ["tabulate==0.9.0", "numpy==>1"]}, runyard={"source": str(requirements)})
    with pytest.raises(EnvironmentDefinitionError) as caught:
        plan_environment(bad)
    assert "'numpy==>1'" in str(caught.value)
    assert f"{requirements}, line 4" in str(caught.value)
    with pytest.raises(EnvironmentDefinitionError, match="pip list item 2"):
        plan_environment(definition({"pip": ["tabulate", "numpy==>1"]}))


def test_pip_options_are_kept_and_v1s_defaults_dropped() -> None:
    plan = plan_environment(
        definition(
            {
                "pip": [
                    "--find-links https://pypi.python.org/simple/index.html",
                    "--extra-index-url https://pypi.python.org/simple",
                    "--index-url=https://example.org/simple",
                    "-f /opt/wheels",
                    "--pre",
                    "tabulate",
                ]
            }
        )
    )
    assert plan.pip_options == ("--index-url https://example.org/simple", "--find-links /opt/wheels", "--pre")
    with pytest.raises(EnvironmentDefinitionError, match=r"-r other\.txt"):
        plan_environment(definition({"pip": ["-r other.txt"]}))


def test_the_hash_covers_what_is_built_and_nothing_else() -> None:
    base = plan_environment(definition("python=3.11", {"pip": ["tabulate==0.9.0"]}))
    renamed = definition("python=3.11", {"pip": ["tabulate==0.9.0"]}, name="other")
    renamed["environmentVariables"] = {"X": "1"}
    renamed["docker"] = {"enabled": True, "baseImage": "ubuntu"}
    assert plan_environment(renamed).hash == base.hash
    assert plan_environment(definition("python=3.11", {"pip": ["tabulate==0.8.10"]})).hash != base.hash
    assert plan_environment(definition({"pip": ["--pre", "tabulate==0.9.0"]})).hash != base.hash


def test_python_versions() -> None:
    assert plan_environment(definition({"pip": ["six"]})).interpreter == sys.executable
    current = plan_environment(definition(f"python={CURRENT}.0", {"pip": ["six"]}))
    assert (current.python, current.interpreter) == (CURRENT, sys.executable)
    old = plan_environment(definition("python=3.8.13", {"pip": ["six"]}))
    assert (old.python, old.interpreter) == (CURRENT, sys.executable)
    assert any("Python 3.8 requested" in note and "3.11 or newer" in note for note in old.notes)
    with pytest.raises(EnvironmentDefinitionError) as caught:
        plan_environment(definition("python=3.99", {"pip": ["six"]}))
    assert "Python 3.99" in str(caught.value) and "found: " in str(caught.value)
    assert CURRENT in str(caught.value).split("found: ")[1]


@pytest.mark.skipif(
    CURRENT == "3.12" or not interpreters.find_interpreter("3.12"), reason="no Python 3.12 here"
)
def test_a_requested_python_that_exists_is_used() -> None:
    plan = plan_environment(definition("python=3.12", {"pip": ["six"]}))
    assert plan.python == "3.12"
    assert interpreters.version_of(plan.interpreter) == "3.12"
    assert plan.hash != plan_environment(definition({"pip": ["six"]})).hash


def test_interpreters_found_and_their_versions_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    versions = interpreters.found_versions()
    assert CURRENT in versions
    assert interpreters.find_interpreter(CURRENT) == sys.executable
    if len(versions) > 1:
        assert (tmp_path / "interpreters.json").exists()
    assert not any("shims" in path for path in interpreters._candidates())


def test_user_managed_and_no_environment() -> None:
    assert plan_environment(None).user_managed and plan_environment(None).hash == ""
    section = {"userManagedDependencies": True, "interpreterPath": "python"}
    plan = plan_environment({"name": "mine", "python": section})
    assert (plan.user_managed, plan.interpreter, plan.hash) == (True, sys.executable, "")
    with pytest.raises(EnvironmentDefinitionError, match="/no/such/python"):
        plan_environment({"name": "mine", "python": {**section, "interpreterPath": "/no/such/python"}})


def test_requirement_changes_in_words() -> None:
    def summary(*pip: str, python: str = "3.8") -> dict[str, Any]:
        return plan_environment(definition(f"python={python}", "numpy", {"pip": list(pip)})).summary()

    old = summary("scikit-learn==1.4", "pandas>=2")
    assert requirement_changes(old, summary("scikit-learn==1.5", "pandas>=2")) == ["scikit-learn 1.4 → 1.5"]
    assert requirement_changes(old, summary("scikit-learn==1.4", "pandas>=2", "tabulate")) == [
        "added tabulate"
    ]
    assert requirement_changes(old, summary("scikit-learn==1.4")) == ["removed pandas"]
    assert requirement_changes(old, summary("scikit-learn==1.4", "pandas>=2.1")) == ["pandas >=2 → >=2.1"]
    assert requirement_changes(old, old) == []
    with_python = {**old, "python": "3.12"}
    assert requirement_changes(old, with_python) == [f"Python {old['python']} → 3.12"]


def test_planning_is_fast() -> None:
    """A step's environment is planned every time it runs: no subprocess, no metadata scan."""
    typical = definition(
        "python=3.11", "numpy=1.26", "pip", {"pip": ["azureml-defaults", "scikit-learn==1.4.2", "tabulate"]}
    )
    plan_environment(typical)
    times = []
    for _ in range(50):
        start = time.perf_counter()
        plan_environment(typical)
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.005


def test_wheels_named_by_path_or_url_become_direct_references(tmp_path: Path) -> None:
    wheel = tmp_path / "My_Pkg-1.0-py3-none-any.whl"
    plan = plan_environment(
        definition(
            {"pip": [str(wheel), "https://example.org/w/tiny-2.0-py3-none-any.whl; python_version > '3'"]}
        )
    )
    assert plan.requirements == (
        f"my-pkg @ {wheel.as_uri()}",
        'tiny @ https://example.org/w/tiny-2.0-py3-none-any.whl ; python_version > "3"',
    )

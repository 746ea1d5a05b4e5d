"""Environment plans: conda specs mapped to pip, azureml-* satisfied by runyard, Python versions, the content
hash and the words for what changed. Fast and offline: nothing here builds or touches the network."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import runyard
from env_definitions import v1_definition
from runyard.environments import interpreters
from runyard.environments.conda_map import conda_to_pip
from runyard.environments.plan import plan_environment, requirement_changes
from runyard.errors import EnvironmentDefinitionError

CURRENT = f"{sys.version_info.major}.{sys.version_info.minor}"


def definition(*dependencies: Any, name: str = "train-env", **extra: Any) -> dict[str, Any]:
    """v1's environment JSON with the given conda dependencies (strings and {"pip": [...]} items)."""
    return v1_definition(list(dependencies), name=name, **extra)


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


# -- definitions written by someone else: what they can make the planner and the build do ----------------


@pytest.mark.parametrize(
    "line",
    [
        "--find-links /opt/wheels --target /anywhere",  # more uv options smuggled in the value
        '--index-url "https://pypi.org/simple',  # an unbalanced quote: shlex would fail mid-build
        "--extra-index-url 'https://pkgs.example/simple'",  # quotes: not one token as written
        "--find-links C:\\wheels",  # shlex eats backslashes
        "--index-url=--system",  # another option as the value
        "-f\t/opt/wheels\t--prefix=/x",
    ],
)
def test_a_pip_option_value_is_one_token_or_a_definition_error_naming_the_line(line: str) -> None:
    with pytest.raises(EnvironmentDefinitionError, match="one word") as caught:
        plan_environment(definition({"pip": [line, "tabulate"]}))
    assert line.split()[0].split("=")[0] in str(caught.value)


def test_every_kept_pip_option_splits_into_exactly_its_name_and_value() -> None:
    plan = plan_environment(
        definition({"pip": ["--index-url=https://u:p@pkgs.example/simple", "-f /opt/w", "--pre", "six"]})
    )
    assert [shlex.split(option) for option in plan.pip_options] == [
        ["--index-url", "https://u:p@pkgs.example/simple"],
        ["--find-links", "/opt/w"],
        ["--pre"],
    ]


def tiny_wheel(folder: Path, body: bytes) -> Path:
    """A file with a wheel's name: planning reads its bytes, never installs it."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "tiny-1.0-py3-none-any.whl"
    wheel.write_bytes(body)
    return wheel


def test_a_local_wheel_enters_the_hash_by_its_content(tmp_path: Path) -> None:
    wheel = tiny_wheel(tmp_path / "wheels", b"first")
    first = plan_environment(definition({"pip": [str(wheel)]}))
    assert plan_environment(definition({"pip": [str(wheel)]})).hash == first.hash
    tiny_wheel(tmp_path / "wheels", b"other")  # same path, same size, new bytes
    assert plan_environment(definition({"pip": [str(wheel)]})).hash != first.hash
    remote = definition({"pip": ["tiny @ https://example.org/tiny-1.0-py3-none-any.whl"]})
    assert plan_environment(remote).hash == plan_environment(remote).hash


def test_a_local_find_links_folder_enters_the_hash_by_its_listing(tmp_path: Path) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    spec = definition({"pip": [f"--find-links {folder}", "--no-index", "tiny==1.0"]})
    empty = plan_environment(spec).hash
    tiny_wheel(folder, b"a wheel")
    added = plan_environment(spec).hash
    assert added != empty
    assert plan_environment(spec).hash == added
    file_url = definition({"pip": [f"--find-links {folder.as_uri()}", "--no-index", "tiny==1.0"]})
    assert plan_environment(file_url).hash != plan_environment(spec).hash  # another option text, same folder


def test_planning_with_a_large_local_wheel_reads_it_once(tmp_path: Path) -> None:
    wheel = tiny_wheel(tmp_path, b"x" * 20_000_000)
    spec = definition({"pip": [str(wheel), "tabulate"]})
    plan_environment(spec)
    start = time.perf_counter()
    for _ in range(20):
        plan_environment(spec)
    assert (time.perf_counter() - start) / 20 < 0.005  # memoised by (path, size, mtime): no re-read


def test_url_credentials_stay_out_of_notes_summary_and_errors() -> None:
    private = "pkg @ https://alice:s3cret@pkgs.example/pkg-1.0.tar.gz"
    plan = plan_environment(
        definition({"pip": [private, "azureml-core @ https://alice:s3cret@pkgs.example/a.whl"]})
    )
    assert plan.requirements == (private,)  # uv needs them
    shown = json.dumps([plan.summary(), plan.notes, plan.satisfied_by_runyard])
    assert "s3cret" not in shown and "alice:****@pkgs.example" in shown
    for bad in (
        [private, "pkg @ https://alice:s3cret@pkgs.example/pkg-2.0.tar.gz ; ==="],
        ["--index-url https://alice:s3cret@pkgs.example/simple --target /x"],
        ["--require-virtualenv https://alice:s3cret@pkgs.example"],
    ):
        with pytest.raises(EnvironmentDefinitionError) as caught:
            plan_environment(definition({"pip": bad}))
        assert "s3cret" not in str(caught.value), str(caught.value)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "large", "nul", "missing"])
def test_a_conda_file_is_read_only_when_it_is_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "conda.yml"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: a blocking open would wait forever
    elif kind == "device":
        path = Path("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "large":
        path.write_text("dependencies:\n" + "  - six\n" * 40_000)
    spec = {
        "name": "from-file",
        "python": {"condaDependenciesFile": str(path) + ("\x00" if kind == "nul" else "")},
    }
    with pytest.raises(EnvironmentDefinitionError, match="regular file of at most 256 KB"):
        plan_environment(spec)
    if kind == "large":
        path.write_text("dependencies:\n  - six\n  - pip:\n    - tabulate==0.9.0\n")
        assert plan_environment(spec).requirements == ("six", "tabulate==0.9.0")


def test_a_requirements_source_that_is_a_fifo_does_not_block_the_error(tmp_path: Path) -> None:
    source = tmp_path / "requirements.txt"
    os.mkfifo(source)
    with pytest.raises(EnvironmentDefinitionError, match=r"requirements\.txt") as caught:
        plan_environment(definition({"pip": ["numpy==>1"]}, runyard={"source": str(source)}))
    assert "line" not in str(caught.value).split("requirements.txt")[1][:8]


def test_azureml_mlflow_brings_its_mlflow_client_unless_the_environment_lists_one() -> None:
    plan = plan_environment(definition({"pip": ["azureml-mlflow==1.48.0", "azureml-defaults", "six"]}))
    assert plan.requirements == ("mlflow-skinny", "six")
    assert plan.satisfied_by_runyard == ("azureml-defaults", "azureml-mlflow==1.48.0")
    shown = f"provided by runyard {runyard.__version__}"
    assert f"azureml-mlflow==1.48.0: {shown}; its mlflow client comes from mlflow-skinny" in plan.notes
    assert f"azureml-defaults: {shown} (not installed from the index)" in plan.notes
    own = plan_environment(definition({"pip": ["mlflow==2.9.2", "azureml-mlflow"]}))
    assert own.requirements == ("mlflow==2.9.2",)
    assert f"azureml-mlflow: {shown}; its mlflow client is the environment's own mlflow" in own.notes
    pinned = plan_environment(definition({"pip": ["azureml-mlflow", "mlflow-skinny==2.9.2"]}))
    assert pinned.requirements == ("mlflow-skinny==2.9.2",)
    # v1's azureml-dataset-runtime[pandas] pinned pandas below 3 (v1 scripts rely on pandas 1/2 behaviour)
    data = plan_environment(definition({"pip": ["azureml-dataset-runtime[pandas,fuse]"]}))
    assert data.requirements == ("pandas<3",)
    assert data.satisfied_by_runyard == ("azureml-dataset-runtime[fuse,pandas]",)
    own_pandas = plan_environment(definition({"pip": ["azureml-dataset-runtime[pandas]", "pandas==2.2.3"]}))
    assert own_pandas.requirements == ("pandas==2.2.3",)
    fuse_only = plan_environment(definition({"pip": ["azureml-dataset-runtime[fuse]"]}))
    assert fuse_only.requirements == ()


@pytest.mark.parametrize(
    ("line", "requirement"),
    [
        (
            "git+https://github.com/psf/requests.git@v2.31.0#egg=requests",
            "requests @ git+https://github.com/psf/requests.git@v2.31.0",
        ),
        (
            "git+ssh://git@example.com/org/tool.git@1a2b3c#egg=my_tool[cli]&subdirectory=py",
            "my-tool[cli] @ git+ssh://git@example.com/org/tool.git@1a2b3c#subdirectory=py",
        ),
        (
            'hg+https://hg.example/lib#egg=lib ; python_version >= "3.8"',
            'lib @ hg+https://hg.example/lib ; python_version >= "3.8"',
        ),
        ("svn+https://svn.example/trunk#egg=legacy", "legacy @ svn+https://svn.example/trunk"),
        ("tool @ git+https://example.com/tool.git@v1", "tool @ git+https://example.com/tool.git@v1"),
    ],
)
def test_version_control_lines_become_direct_references(line: str, requirement: str) -> None:
    plan = plan_environment(definition({"pip": [line]}))
    assert plan.requirements == (requirement,)
    assert any("installed from version control" in note and "tag or commit" in note for note in plan.notes)


def test_a_version_control_line_without_egg_says_how_to_name_the_package(tmp_path: Path) -> None:
    source = tmp_path / "requirements.txt"
    source.write_text("six\ngit+https://alice:s3cret@github.com/psf/requests.git@v2.31.0\n")
    env = {**definition({"pip": source.read_text().split()}), "runyard": {"source": str(source)}}
    with pytest.raises(EnvironmentDefinitionError) as caught:
        plan_environment(env)
    message = str(caught.value)
    assert f"{source}, line 2" in message and "s3cret" not in message
    assert (
        "add '#egg=NAME'" in message and "'NAME @ git+https://alice:****@github.com/psf/requests" in message
    )


def test_curated_sklearn_and_lightgbm_hold_what_v1s_images_held() -> None:
    from runyard.environments.curated import curated_definition

    for name in ("AzureML-sklearn-0.24-ubuntu18.04-py37-cpu", "AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu"):
        plan = plan_environment(curated_definition(name))
        names = {r.split(">")[0].split("=")[0] for r in plan.requirements}
        assert {"scikit-learn", "pandas", "numpy", "scipy", "matplotlib", "psutil", "tqdm"} <= names
        assert "mlflow-skinny" in names and plan.satisfied_by_runyard == ("azureml-mlflow",)
    assert "lightgbm" in names and not names & {"torch", "tensorflow"}

"""`runyard env list | show | build | prune`: the real command line against a real workspace and a real
build cache (uv builds; the package index only where a test says so).

Most calls run the CLI's entry point in this process (`cli.main.main`, which turns errors into exit codes
exactly as the installed command does): a subprocess pays a second or more of imports per call. The
failed-build test runs the real `runyard` subprocess, for the exit code and stderr a shell sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from runyard import Workspace
from runyard.cli import render
from runyard.cli.main import main
from runyard.environments import CondaDependencies, Environment
from runyard.environments.build import index_reachable
from runyard.environments.plan import plan_environment


def _register(ws: Workspace, name: str, *, pip: list[str], conda: list[str] | None = None) -> Environment:
    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=pip, conda_packages=conda or [])
    return env.register(ws)


class Cli:
    """`runyard env ...` through the entry point, in this process, in the test's folder."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys, self.monkeypatch = capsys, monkeypatch

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()  # drop what the test printed before
        self.monkeypatch.setattr(sys, "argv", ["runyard", "env", *args])
        # as when piped (160 columns), whatever width an earlier test of this worker left the console with
        self.monkeypatch.setattr(render.console, "width", 160)
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, out + err
        return out

    def refused(self, *args: str) -> str:
        """A user mistake: exit code 1 and one clear message on stderr, never a traceback."""
        code, out, err = self(*args)
        assert code == 1, out + err
        assert "Traceback" not in err and "Error:" in err
        return " ".join(err.split())  # Rich wraps long lines


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return Workspace.create(tmp_path / ".runyard")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(capsys, monkeypatch)


def test_list_and_show_registered_and_curated(ws: Workspace, cli: Cli) -> None:
    train = Environment("train-env")
    train.python.conda_dependencies = CondaDependencies.create(
        pip_packages=["tabulate==0.9.0", "azureml-defaults"], conda_packages=["numpy"]
    )
    train.environment_variables = {"TRAIN_MODE": "fast[1]"}  # brackets: printed as text, not Rich markup
    train.register(ws)
    train.python.conda_dependencies.add_pip_package("six")
    second = train.register(ws)
    assert second.version == "2"
    mine = Environment("mine")
    mine.python.user_managed_dependencies = True
    mine.register(ws)
    _register(ws, "conda-only", pip=[], conda=["cudatoolkit=11.8"])

    listed = json.loads(cli.ok("list", "--json"))
    assert [(r["name"], r["version"], r["kind"]) for r in listed] == [
        ("conda-only", 1, "registered"),
        ("mine", 1, "registered"),
        ("train-env", 2, "registered"),
    ]
    rows = {r["name"]: r for r in listed}
    plan = plan_environment(ws.store.get_environment("train-env").definition)
    assert rows["train-env"]["requirements"] == str(len(plan.requirements)) == "3"  # numpy, six, tabulate
    assert rows["train-env"]["hash"] == plan.hash and rows["train-env"]["built"] in ("yes", "no")
    assert rows["mine"]["built"] == "user-managed"
    assert "cudatoolkit" in rows["conda-only"]["problem"]  # one bad environment does not fail the listing
    table = cli.ok("list")
    assert "train-env" in table and "user-managed" in table and "runyard env show conda-only" in table
    with_curated = json.loads(cli.ok("list", "--curated", "--json"))
    assert {"AzureML-Minimal", "AzureML-Tutorial"} <= {
        r["name"] for r in with_curated if r["kind"] == "curated"
    }

    shown = cli.ok("show", "train-env:1")
    assert "Environment train-env:1" in shown and "six" not in shown  # version 1, not the latest
    assert "numpy" in shown and "tabulate==0.9.0" in shown
    assert "Satisfied by runyard" in shown and "azureml-defaults" in shown
    assert "TRAIN_MODE=fast[1]" in shown
    latest = json.loads(cli.ok("show", "train-env", "--json"))
    assert latest["version"] == "2" and latest["plan"]["hash"] == plan.hash
    assert latest["plan"]["requirements"] == list(plan.requirements) and latest["notes"] == list(plan.notes)
    assert "user-managed" in cli.ok("show", "mine")
    assert "Environment AzureML-Tutorial (curated)" in cli.ok("show", "AzureML-Tutorial")

    assert "No environment 'nope'" in cli.refused("show", "nope")
    assert "not NAME or NAME:VERSION" in cli.refused("show", "train-env:latest")
    assert "cudatoolkit=11.8" in cli.refused("build", "conda-only")
    assert "nothing to build" in cli.ok("build", "mine")


def test_show_masks_the_credentials_of_a_private_index(ws: Workspace, cli: Cli) -> None:
    """A private index is named with its token (https://user:token@host/simple) in the pip options, a
    requirement or a variable; `runyard env show` prints none of them, in text or JSON."""
    env = Environment("private-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["tabulate==0.9.0"])
    env.python.conda_dependencies.set_pip_option("--extra-index-url https://bot:s3cret@pkgs.example/simple")
    env.python.conda_dependencies.add_pip_package(
        "private-pkg @ https://ghp_T0KEN@pkgs.example/private_pkg-1.0-py3-none-any.whl"
    )
    env.environment_variables = {"PIP_INDEX_URL": "https://bot:s3cret@pkgs.example/simple"}
    env.register(ws)

    shown = cli.ok("show", "private-env")
    assert "--extra-index-url https://bot:****@pkgs.example/simple" in shown
    assert "private-pkg @ https://****@pkgs.example/private_pkg-1.0-py3-none-any.whl" in shown
    assert "PIP_INDEX_URL=https://bot:****@pkgs.example/simple" in shown
    as_json = cli.ok("show", "private-env", "--json")
    for text in (shown, as_json):
        assert "s3cret" not in text and "T0KEN" not in text
    assert json.loads(as_json)["pipOptions"] == ["--extra-index-url https://bot:****@pkgs.example/simple"]


def test_build_reuse_and_prune(
    ws: Workspace, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a cache of its own, as prune removes builds: AzureML-Minimal installs nothing from the index."""
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path / "own-cache"))
    assert "No environment builds" in cli.ok("list", "--builds")
    first = cli.ok("build", "AzureML-Minimal")
    assert "Built in" in first
    again = cli.ok("build", "AzureML-Minimal")
    assert "Reused the build in" in again and "Built in" not in again
    builds = json.loads(cli.ok("list", "--builds", "--json"))
    assert [b["name"] for b in builds] == ["AzureML-Minimal"] and builds[0]["sizeBytes"] > 0
    assert Path(builds[0]["location"]).is_dir()
    assert f"Built:        yes, in {builds[0]['location']}" in cli.ok("show", "AzureML-Minimal")

    assert "No builds unused for 30 days" in cli.ok("prune")
    dry = cli.ok("prune", "--older-than", "0", "--dry-run")
    assert f"Would remove {builds[0]['hash'][:12]} AzureML-Minimal" in dry
    assert Path(builds[0]["location"]).is_dir()
    pruned = cli.ok("prune", "--older-than", "0")
    assert "Removed 1 of 1 builds, freed" in pruned
    assert not Path(builds[0]["location"]).exists()
    assert json.loads(cli.ok("list", "--builds", "--json")) == []
    code, _, err = cli("prune", "--older-than", "-1")
    assert code == 2 and "--older-than" in err


def test_prune_removes_killed_builds_leftovers_and_an_untrusted_cache_is_refused(
    ws: Workspace, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed build's `.<hash>.building-<pid>` folder is listed and pruned once old enough (its lock is
    free); a cache other users can write is refused with the chmod that fixes it."""
    cache = tmp_path / "own-cache"
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(cache))
    cli.ok("build", "AzureML-Minimal")
    leftover = cache / f".{'e' * 64}.building-999999"
    (leftover / "lib").mkdir(parents=True)
    (leftover / "lib" / "big.bin").write_bytes(b"x" * 100_000)
    assert "1 unfinished build or removal folders (100.0 kB)" in cli.ok("list", "--builds")
    assert "No builds unused for 30 days" in cli.ok("prune")  # new: left alone
    assert "Would remove unfinished building folder" in cli.ok("prune", "--older-than", "0", "--dry-run")
    assert leftover.exists()
    pruned = " ".join(cli.ok("prune", "--older-than", "0").split())
    assert "Removed 1 of 1 unfinished build/removal folders, freed 100.0 kB" in pruned
    assert not leftover.exists()
    os.chmod(cache, 0o777)
    assert "cannot be trusted" in cli.refused("build", "AzureML-Minimal")
    assert f"chmod 700 {cache}" in cli.refused("prune")


def test_failed_build_exits_1_and_caches_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package that does not exist (or, offline, an index that cannot be reached): one message, the build
    log's tail, exit code 1, and no build left in the cache."""
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path / "own-cache"))
    _register(ws, "bad-env", pip=["runyard-no-such-package-zz==1.0"])
    result = run_cli("env", "build", "bad-env", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "Error: Could not build environment 'bad-env'" in " ".join(result.stderr.split())
    assert "runyard-no-such-package-zz" in result.stderr  # the build log's tail names it
    listed = run_cli("env", "list", "--builds", "--json", cwd=tmp_path)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_build_installs_a_real_package(ws: Workspace, cli: Cli) -> None:
    """tabulate from the package index, into the session's shared cache (other tests reuse the build)."""
    problem = index_reachable()
    if problem is not None:
        pytest.skip(f"the package index is unreachable: {problem}")
    _register(ws, "tab-env", pip=["tabulate==0.9.0"])
    built = cli.ok("build", "tab-env")
    assert "Built in" in built or "Reused the build in" in built  # another test may have built it first
    shown = json.loads(cli.ok("show", "tab-env:1", "--json"))
    assert shown["build"] and shown["plan"]["requirements"] == ["tabulate==0.9.0"]
    python = Path(shown["build"]) / "bin" / "python"
    check = subprocess.run(
        [str(python), "-c", "import tabulate, runyard; print(tabulate.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0 and check.stdout.strip() == "0.9.0", check.stderr
    assert "Reused the build in" in cli.ok("build", "tab-env:1")

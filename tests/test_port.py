"""`runyard port`: the libcst rewrite of azureml. -> runyard.v1. on the samples in examples/v1/.

The CLI runs through its real `main()` in this process (conftest.invoke_cli: ~2 s less per command than a
fresh interpreter; test_v1_notebook.py and test_cli.py run it as a subprocess) on copies of the samples; the
ported script is then run for real, so a rewrite that parses but does not work (an unbound `azureml` name)
fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import invoke_cli
from runyard.porting import PortError, port_cell, port_source

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "v1"


def copy_sample(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(EXAMPLES / name, target)
    return target


def test_python_sample_diff_shows_every_rewrite_and_writes_nothing(tmp_path: Path) -> None:
    script = copy_sample(tmp_path, "port_sample.py")
    before = script.read_bytes()
    result = invoke_cli("port", str(script))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in (
        "+import runyard.v1.core",
        "+import runyard.v1.core as aml",
        "+from runyard.v1.core import Experiment, Workspace  # azureml.core in a comment stays",
        "+from runyard.v1.pipeline.core import (",
        "+from runyard.v1.pipeline.steps import PythonScriptStep",
        '+core = importlib.import_module("runyard.v1.core")',
        '+print("SDK version:", runyard.v1.core.VERSION)',
        '+print("the same module:", aml is runyard.v1.core, core is aml)',
        f"--- a/{script}",
    ):
        assert line in out, line
    assert "-    PipelineData," not in out  # untouched lines inside a multi-line import are context
    assert "1 of 1 file would change (8 rewrites)" in out
    assert script.read_bytes() == before


def test_written_python_file_runs_and_keeps_comments_strings_and_mode(tmp_path: Path) -> None:
    script = copy_sample(tmp_path, "port_sample.py")
    script.chmod(0o754)
    result = invoke_cli("port", "--write", str(script))
    assert result.returncode == 0, result.stderr
    assert "Ported 1 of 1 file (8 rewrites)" in result.stdout
    text = script.read_text()
    assert "import azureml" not in text and "from azureml" not in text
    assert "# azureml.core in a comment stays" in text
    assert "'azureml.core.Workspace'" in text  # a string that is not an import
    assert stat.S_IMODE(script.stat().st_mode) == 0o754
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".port")]  # no temporary file left
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "the same module: True True" in ran.stdout
    assert "classes: Workspace Experiment Run" in ran.stdout


def test_check_exit_codes_and_idempotence(tmp_path: Path) -> None:
    copy_sample(tmp_path, "port_sample.py")
    copy_sample(tmp_path, "port_notebook.ipynb")
    (tmp_path / "plain.py").write_text("print('no azureml here')\n")
    assert invoke_cli("port", "--check", str(tmp_path)).returncode == 1
    assert invoke_cli("port", "--write", str(tmp_path)).returncode == 0
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = invoke_cli("port", "--check", str(tmp_path))
    assert again.returncode == 0, again.stdout
    assert "Nothing to port" in again.stdout
    second = invoke_cli("port", "--write", str(tmp_path))
    assert second.returncode == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == after
    assert invoke_cli("port", "--check", str(tmp_path / "plain.py")).returncode == 0


def test_notebook_cells_ported_around_ipython_lines(tmp_path: Path) -> None:
    notebook = copy_sample(tmp_path, "port_notebook.ipynb")
    original = nbformat.read(notebook, as_version=4)
    result = invoke_cli("port", str(notebook))
    assert result.returncode == 0, result.stderr
    assert f"--- a/{notebook} [cell 2]" in result.stdout
    assert f"+++ b/{notebook} [cell 5]" in result.stdout
    assert "cell 7: a %%bash cell is not Python; left as it is" in result.stderr
    assert "cell 8: not valid Python: invalid syntax (line 2); left as it is" in result.stderr  # `obj?`

    assert invoke_cli("port", "--write", str(notebook)).returncode == 0
    ported = nbformat.read(notebook, as_version=4)
    src = [cell.source for cell in ported.cells]
    old = [cell.source for cell in original.cells]
    assert src[0] == old[0]  # markdown
    assert src[1] == 'import runyard.v1.core\n\nprint("SDK version:", runyard.v1.core.VERSION)'
    assert ported.cells[1].outputs == original.cells[1].outputs
    assert ported.cells[1].execution_count == 1
    assert ported.metadata == original.metadata
    assert src[2].splitlines()[:3] == [
        "import runyard.v1.core as aml",
        "from runyard.v1.core import Experiment, Workspace",
        "from runyard.v1.pipeline.core import (",
    ]
    assert src[3] == old[3].replace("import azureml.core", "import runyard.v1.core").replace(
        "print(azureml.core.Run)", "print(runyard.v1.core.Run)"
    )
    assert src[3].startswith("!pip install azureml-core\n%matplotlib inline\n")
    assert "files = !ls\nif files:\n    %time n = len(files)\n" in src[3]
    assert "azureml" not in src[2] + src[4]
    assert src[4] == old[4].replace("from azureml.core import Run", "from runyard.v1.core import Run")
    assert src[4].startswith("%%writefile train.py\n")
    assert src[5:8] == old[5:8]  # %%writefile conda.yml, %%bash, the cell that does not parse
    assert src[8] == old[8].replace('import_module("azureml.core")', 'import_module("runyard.v1.core")')
    assert src[9] == old[9]
    # cell 11 uses the name cell 2's `import azureml.core` binds: one namespace, so it is ported too
    assert src[10] == old[10].replace(" azureml.core.Run", " runyard.v1.core.Run")


def test_folders_skip_tool_state_and_missing_paths_are_errors(tmp_path: Path) -> None:
    for folder in (".venv", ".git", ".runyard", "env_with_cfg", "code"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_text("import azureml.core\n")
    (tmp_path / "env_with_cfg" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "notes.txt").write_text("import azureml.core\n")
    result = invoke_cli("port", "--write", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Ported 1 of 1 file (1 rewrite)" in result.stdout
    assert (tmp_path / "code" / "m.py").read_text() == "import runyard.v1.core\n"
    for untouched in (".venv", ".git", ".runyard", "env_with_cfg"):
        assert (tmp_path / untouched / "m.py").read_text() == "import azureml.core\n"

    missing = invoke_cli("port", str(tmp_path / "code"), str(tmp_path / "nope.py"))
    assert missing.returncode == 1
    assert "Error: No such file or folder" in missing.stderr and "nope.py" in missing.stderr
    both = invoke_cli("port", "--write", "--check", str(tmp_path))
    assert both.returncode == 1 and "exclude each other" in both.stderr


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # the name a plain import binds is rewritten wherever it refers to that import
        (
            "import azureml\nimport azureml.core\nx = azureml.core.VERSION\n",
            "import runyard.v1\nimport runyard.v1.core\nx = runyard.v1.core.VERSION\n",
        ),
        # an alias named azureml binds the module itself: its uses stay
        ("import azureml.core as azureml\nazureml.Run\n", "import runyard.v1.core as azureml\nazureml.Run\n"),
        # a local variable called azureml is not the import
        (
            "import azureml.core\ndef f(azureml):\n    return azureml.x\n",
            "import runyard.v1.core\ndef f(azureml):\n    return azureml.x\n",
        ),
        # relative imports and other packages that merely start with the letters stay
        ("from . import azureml\nimport azureml_extra\nfrom .azureml import core\n", None),
        ("__import__('azureml.core')\n", "__import__('runyard.v1.core')\n"),
        ("importlib.import_module('azureml.core')\n", None),  # importlib not imported: not importlib's call
        ("import importlib\nimportlib.import_module(b'azureml.core')\n", None),
        ("print('azureml.core', f'{1}azureml.core')  # import azureml.core\n", None),
        ("import azureml.core\r\nazureml.core.Run\r\n", "import runyard.v1.core\r\nrunyard.v1.core.Run\r\n"),
    ],
)
def test_port_source_cases(source: str, expected: str | None) -> None:
    ported = port_source(source)
    assert ported.code == (source if expected is None else expected)
    assert (ported.rewrites == 0) == (expected is None)
    assert port_source(ported.code).rewrites == 0  # idempotent


def test_python_file_encoding_is_kept(tmp_path: Path) -> None:
    script = tmp_path / "latin.py"
    script.write_bytes("# -*- coding: latin-1 -*-\nimport azureml.core\nname = 'café'\n".encode("latin-1"))
    assert invoke_cli("port", "--write", str(script)).returncode == 0
    assert script.read_bytes() == "# -*- coding: latin-1 -*-\nimport runyard.v1.core\nname = 'café'\n".encode(
        "latin-1"
    )


def test_cells_that_cannot_be_ported_are_reported_not_broken() -> None:
    with pytest.raises(PortError, match="never closed"):
        port_cell("import azureml.core\nx = (\n")
    weird = port_cell("%%writefile $folder/score.py\nfrom azureml.core import Run\n")
    assert weird.source == "%%writefile $folder/score.py\nfrom runyard.v1.core import Run\n"
    shell = port_cell("%%sh\necho azureml.core\n")
    assert shell.rewrites == 0 and shell.skipped is not None
    # a line that starts with % inside a parenthesised expression is Python, and the cell parses as is
    modulo = port_cell("import azureml.core\nx = (10\n% 3)\n")
    assert modulo.source == "import runyard.v1.core\nx = (10\n% 3)\n"


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text("{not json")
    (tmp_path / "bad.py").write_bytes(b"import azureml.core\nx = '\xff'\n")
    result = invoke_cli("port", str(tmp_path))
    assert result.returncode == 0
    assert "broken.ipynb: cannot be read as a notebook" in result.stderr
    assert "bad.py: cannot be read as Python source" in result.stderr
    assert os.path.getsize(tmp_path / "broken.ipynb") == len("{not json")


def test_a_linked_file_is_ported_once_through_its_link(tmp_path: Path) -> None:
    real = tmp_path / "real.py"
    real.write_text("import azureml.core\n")
    (tmp_path / "link.py").symlink_to(real)
    result = invoke_cli("port", "--write", str(tmp_path), str(real))
    assert result.returncode == 0, result.stderr
    assert "Ported 1 of 1 file (1 rewrite)" in result.stdout
    assert f"{tmp_path / 'link.py'}: a symbolic link (to {real}); not followed" in result.stderr
    assert (tmp_path / "link.py").is_symlink()
    assert real.read_text() == "import runyard.v1.core\n"


def test_links_below_a_folder_are_not_followed_but_a_named_link_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "lib.py").write_text("import azureml.core\n")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "lib.py").symlink_to(shared / "lib.py")
    (project / "vendored").symlink_to(shared, target_is_directory=True)
    (project / "gone.py").symlink_to(tmp_path / "missing.py")  # a dangling link is not read either
    result = invoke_cli("port", "--write", "-q", str(project))
    assert result.returncode == 0, result.stderr
    assert "Nothing to port: no azureml imports in 0 files." in result.stdout
    for name in ("lib.py", "vendored", "gone.py"):
        assert f"{project / name}: a symbolic link" in result.stderr, name
    assert (shared / "lib.py").read_text() == "import azureml.core\n"
    named = invoke_cli("port", "--write", "-q", str(project / "lib.py"))
    assert named.returncode == 0, named.stderr
    assert (shared / "lib.py").read_text() == "import runyard.v1.core\n"
    assert (project / "lib.py").is_symlink()


def test_a_read_only_file_is_reported_not_written_and_the_rest_is_ported(tmp_path: Path) -> None:
    frozen = tmp_path / "a_frozen.py"
    frozen.write_text("import azureml.core\n")
    frozen.chmod(0o444)
    (tmp_path / "b_train.py").write_text("import azureml.core\n")
    try:
        result = invoke_cli("port", "--write", "-q", str(tmp_path))
        assert frozen.read_text() == "import azureml.core\n"
        assert stat.S_IMODE(frozen.stat().st_mode) == 0o444
    finally:
        frozen.chmod(0o644)
    assert result.returncode == 1
    assert f"{frozen}: read-only, not written" in result.stderr
    assert "Ported 1 of 2 files (1 rewrite). 1 file not written: see the warnings above." in result.stdout
    assert (tmp_path / "b_train.py").read_text() == "import runyard.v1.core\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".port")]


def test_a_notebook_nbformat_cannot_write_back_is_reported_in_a_dry_run_too(tmp_path: Path) -> None:
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "source": "import azureml.core\n"}
    odd = tmp_path / "a_odd.ipynb"
    odd.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [cell]}))
    before = odd.read_bytes()
    (tmp_path / "b_train.py").write_text("import azureml.core\n")
    for flags in ((), ("--check",), ("--write",)):
        result = invoke_cli("port", *flags, str(tmp_path))
        assert "Traceback" not in result.stderr, result.stderr
        assert f"{odd}: cannot be written back as a notebook" in result.stderr, flags
        assert "a_odd.ipynb [cell 1]" not in result.stdout  # no diff for what will not be written
        assert odd.read_bytes() == before
    assert (tmp_path / "b_train.py").read_text() == "import runyard.v1.core\n"


def _notebook(path: Path, *sources: str) -> Path:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(notebook, path)
    return path


def test_a_notebook_is_one_namespace_for_the_name_an_import_binds(tmp_path: Path) -> None:
    """`import azureml.core` in one cell, `azureml.core.X` in later ones: the ported notebook runs."""
    notebook = _notebook(
        tmp_path / "nb.ipynb",
        "import azureml.core",
        "def kind():\n    return azureml.core.Run.__name__",
        "print(azureml.core.VERSION is not None, kind())",
        "def local(azureml):\n    return azureml\nprint(local('param'))",  # a parameter stays
        "%%writefile score.py\nprint(azureml.core.VERSION)",  # a script of its own: its name is unbound
    )
    result = invoke_cli("port", "--write", str(notebook))
    assert result.returncode == 0, result.stderr
    cells = [cell.source for cell in nbformat.read(notebook, as_version=4).cells]
    assert cells[1] == "def kind():\n    return runyard.v1.core.Run.__name__"
    assert cells[3].startswith("def local(azureml):\n    return azureml\n")
    assert cells[4] == "%%writefile score.py\nprint(azureml.core.VERSION)"
    program = "ns = {}\n" + "".join(f"exec({src!r}, ns)\n" for src in cells[:4])
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "True Run\nparam\n"


@pytest.mark.parametrize(
    "first",
    [
        "import azureml.core as azureml",  # binds the name to azureml.core, which the port keeps
        "def f():\n    import azureml.core",  # binds it inside f only
        "%%writefile s.py\nimport azureml.core",  # in another file
        "azureml = object()",  # not an import
    ],
)
def test_other_cells_keep_a_name_no_notebook_level_import_binds(tmp_path: Path, first: str) -> None:
    notebook = _notebook(tmp_path / "nb.ipynb", first, "azureml.core.Run")
    assert invoke_cli("port", "--write", str(notebook)).returncode == 0
    assert nbformat.read(notebook, as_version=4).cells[1].source == "azureml.core.Run"


ESTIMATOR_SCRIPT = """\
from azureml.core import Experiment, Workspace
from azureml.train.dnn import PyTorch
from azureml.train.hyperdrive import BanditPolicy, choice
import azureml.train.estimator
"""


def test_imports_of_what_runyard_lacks_are_reported_with_the_alternative(tmp_path: Path) -> None:
    """v1's estimators (azureml.train.*) are rewritten like any import, but the port says that runyard has
    no such module and what to use instead, rather than leaving a bare ModuleNotFoundError for later."""
    ported = port_source(ESTIMATOR_SCRIPT)
    assert [(m.line, m.module) for m in ported.missing] == [
        (2, "azureml.train.dnn"),
        (3, "azureml.train.hyperdrive"),
        (4, "azureml.train.estimator"),
    ]
    assert "runyard.v1.train.dnn import PyTorch" in ported.code and ported.rewrites == 4
    assert port_source("from azureml.core import Run\nimport azureml.widgets\n").missing == []

    script = tmp_path / "estimator.py"
    script.write_text(ESTIMATOR_SCRIPT)
    result = invoke_cli("port", "--write", str(script))
    assert result.returncode == 0, result.stderr
    warned = " ".join(result.stderr.split())  # Rich wraps long lines
    assert "line 2: azureml.train.dnn is not available in runyard: v1's estimators" in warned
    assert "deprecated in v1 itself" in warned and "submit a ScriptRunConfig(" in warned
    assert "environment=env) instead, with an Environment" in warned
    assert "line 3: azureml.train.hyperdrive is not available in runyard: HyperDrive tuning" in warned
    assert "line 1:" not in warned  # azureml.core is runyard's
    assert "Ported 1 of 1 file (4 rewrites)" in result.stdout

    notebook = _notebook(
        tmp_path / "nb.ipynb",
        "from azureml.core import Workspace",
        "%%writefile train.py\nimport os\nfrom azureml.train.sklearn import SKLearn",
    )
    cells = invoke_cli("port", str(notebook))
    assert "cell 2, line 3: azureml.train.sklearn is not available" in " ".join(cells.stderr.split())

"""`runyard port`: the libcst rewrite of azureml. -> runyard.v1. on the samples in examples/v1/.

The CLI runs as a real subprocess on copies of the samples; the ported script is then run for real, so a
rewrite that parses but does not work (an unbound `azureml` name) fails here.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import run_cli
from runyard.porting import PortError, port_cell, port_source

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "v1"


def copy_sample(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(EXAMPLES / name, target)
    return target


def test_python_sample_diff_shows_every_rewrite_and_writes_nothing(tmp_path: Path) -> None:
    script = copy_sample(tmp_path, "port_sample.py")
    before = script.read_bytes()
    result = run_cli("port", str(script))
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
    result = run_cli("port", "--write", str(script))
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
    assert run_cli("port", "--check", str(tmp_path)).returncode == 1
    assert run_cli("port", "--write", str(tmp_path)).returncode == 0
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = run_cli("port", "--check", str(tmp_path))
    assert again.returncode == 0, again.stdout
    assert "Nothing to port" in again.stdout
    second = run_cli("port", "--write", str(tmp_path))
    assert second.returncode == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == after
    assert run_cli("port", "--check", str(tmp_path / "plain.py")).returncode == 0


def test_notebook_cells_ported_around_ipython_lines(tmp_path: Path) -> None:
    notebook = copy_sample(tmp_path, "port_notebook.ipynb")
    original = nbformat.read(notebook, as_version=4)
    result = run_cli("port", str(notebook))
    assert result.returncode == 0, result.stderr
    assert f"--- a/{notebook} [cell 2]" in result.stdout
    assert f"+++ b/{notebook} [cell 5]" in result.stdout
    assert "cell 7: a %%bash cell is not Python; left as it is" in result.stderr
    assert "cell 8: not valid Python: invalid syntax (line 2); left as it is" in result.stderr  # `obj?`

    assert run_cli("port", "--write", str(notebook)).returncode == 0
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


def test_folders_skip_tool_state_and_missing_paths_are_errors(tmp_path: Path) -> None:
    for folder in (".venv", ".git", ".runyard", "env_with_cfg", "code"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_text("import azureml.core\n")
    (tmp_path / "env_with_cfg" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "notes.txt").write_text("import azureml.core\n")
    result = run_cli("port", "--write", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Ported 1 of 1 file (1 rewrite)" in result.stdout
    assert (tmp_path / "code" / "m.py").read_text() == "import runyard.v1.core\n"
    for untouched in (".venv", ".git", ".runyard", "env_with_cfg"):
        assert (tmp_path / untouched / "m.py").read_text() == "import azureml.core\n"

    missing = run_cli("port", str(tmp_path / "code"), str(tmp_path / "nope.py"))
    assert missing.returncode == 1
    assert "Error: No such file or folder" in missing.stderr and "nope.py" in missing.stderr
    both = run_cli("port", "--write", "--check", str(tmp_path))
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
    assert run_cli("port", "--write", str(script)).returncode == 0
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
    result = run_cli("port", str(tmp_path))
    assert result.returncode == 0
    assert "broken.ipynb: cannot be read as a notebook" in result.stderr
    assert "bad.py: cannot be read as Python source" in result.stderr
    assert os.path.getsize(tmp_path / "broken.ipynb") == len("{not json")


def test_a_linked_file_is_ported_once_through_its_link(tmp_path: Path) -> None:
    real = tmp_path / "real.py"
    real.write_text("import azureml.core\n")
    (tmp_path / "link.py").symlink_to(real)
    result = run_cli("port", "--write", str(tmp_path), str(real))
    assert result.returncode == 0, result.stderr
    assert "Ported 1 of 1 file (1 rewrite)" in result.stdout
    assert (tmp_path / "link.py").is_symlink()
    assert real.read_text() == "import runyard.v1.core\n"

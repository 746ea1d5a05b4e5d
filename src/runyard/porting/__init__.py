"""`runyard port`: the mechanical rewrite of Azure ML SDK v1 code, `azureml.` -> `runyard.v1.`.

`python.py` rewrites Python source with libcst (never with regular expressions: comments, strings and
formatting stay); `notebook.py` ports a notebook cell around its IPython lines; `files.py` finds files,
makes the diffs and writes atomically. The CLI face is `runyard/cli/port.py`.
"""

from runyard.porting.files import FileResult, find_files, port_file
from runyard.porting.notebook import port_cell
from runyard.porting.python import PortError, port_source

__all__ = ["FileResult", "PortError", "find_files", "port_cell", "port_file", "port_source"]

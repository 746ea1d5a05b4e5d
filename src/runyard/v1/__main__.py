"""`python -m runyard.v1 script.py [args]`: run an unported Azure ML SDK v1 script as it is.

Every `azureml.*` import in the script (and in every job it submits, see `runyard.v1_imports`) resolves
to `runyard.v1.*`. The script runs as `__main__` with `sys.argv` as `python script.py args` sets it.
"""

import sys

from runyard.v1_imports import run_script

if __name__ == "__main__":  # not when a tool imports every module of runyard.v1
    run_script(sys.argv[1:])

"""A v1 script for `runyard port`: every kind of rewrite, and it still runs afterwards.

    runyard port examples/v1/port_sample.py            # the diff
    runyard port --write examples/v1/port_sample.py    # apply it (then: python port_sample.py)

Comments and strings that only mention azureml.core stay as they are.
"""

import importlib

import azureml.core
import azureml.core as aml
from azureml.core import Experiment, Workspace  # azureml.core in a comment stays
from azureml.pipeline.core import (
    Pipeline,
    PipelineData,
)
from azureml.pipeline.steps import PythonScriptStep

core = importlib.import_module("azureml.core")

print("SDK version:", azureml.core.VERSION)
print("the same module:", aml is azureml.core, core is aml)
print("classes:", Workspace.__name__, Experiment.__name__, aml.Run.__name__)
print("pipeline:", Pipeline.__name__, PipelineData.__name__, PythonScriptStep.__name__)
print("a string that is not an import: 'azureml.core.Workspace'")

"""A v1 pipeline step: imports azureml.core, as steps written for Azure ML do."""

import argparse

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--value", type=float)
args = parser.parse_args()

run = Run.get_context()
run.log("step_value", args.value)
print("step logged", args.value, "in", run.id)

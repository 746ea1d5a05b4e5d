"""A v1 training script submitted with ScriptRunConfig: `import azureml.core` and a dotted use."""

import argparse

import azureml.core

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float)
args = parser.parse_args()

run = azureml.core.Run.get_context()
run.log("alpha", args.alpha)
print("trained with alpha", args.alpha)

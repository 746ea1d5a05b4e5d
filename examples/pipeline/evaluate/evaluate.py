"""Step 3: score the model on the held-out data."""

import argparse
import json
import os

import numpy as np

from runyard import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--report", required=True)
args = parser.parse_args()

run = Run.get_context()
samples = run.input_datasets["samples"].to_pandas_dataframe()
test = samples[samples["split"] == "test"]
labels = test["label"].to_numpy()
model = np.load(os.path.join(args.model, "model.npz"))
predicted = (test[["x1", "x2"]].to_numpy() @ model["weights"] + model["bias"]) > 0
accuracy = float(np.mean(predicted == labels))
run.log("test_accuracy", accuracy)
for cls in (0, 1):
    mask = labels == cls
    run.log_row("per_class", cls=cls, support=int(mask.sum()), recall=float(np.mean(predicted[mask] == cls)))
with open(os.path.join(args.report, "report.json"), "w") as fh:
    json.dump({"accuracy": accuracy}, fh)
print(f"test accuracy {accuracy:.3f}")

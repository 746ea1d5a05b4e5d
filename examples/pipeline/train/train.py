"""Step 2: logistic regression by gradient descent, logging loss and accuracy every epoch."""

import argparse
import os

import numpy as np

from runyard import Run  # with Azure ML: from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)  # the input's name: the rows come from input_datasets
parser.add_argument("--lr", type=float, default=0.5)
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--model", required=True)
args = parser.parse_args()

run = Run.get_context()
samples = run.input_datasets["samples"].to_pandas_dataframe()  # a TabularDataset
train = samples[samples["split"] == "train"]
x, y = train[["x1", "x2"]].to_numpy(), train["label"].to_numpy(dtype=float)
weights, bias = np.zeros(2), 0.0
for epoch in range(args.epochs):
    probs = 1 / (1 + np.exp(-(x @ weights + bias)))
    loss = float(-np.mean(y * np.log(probs + 1e-9) + (1 - y) * np.log(1 - probs + 1e-9)))
    weights -= args.lr * (x.T @ (probs - y)) / len(y)
    bias -= args.lr * float(np.mean(probs - y))
    run.log("loss", loss, step=epoch)
    run.log("train_accuracy", float(np.mean((probs > 0.5) == y)), step=epoch)
    if epoch % 10 == 0 or epoch == args.epochs - 1:
        print(f"epoch {epoch:3d}  loss {loss:.4f}")
np.savez(os.path.join(args.model, "model.npz"), weights=weights, bias=bias)
print(f"saved model (lr={args.lr}, {args.epochs} epochs)")

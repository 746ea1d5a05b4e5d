"""A small real training script: logistic regression with NumPy on two noisy blobs.

It uses only the Azure ML SDK v1 names (`Run.get_context`, `run.log`, …); with azureml-core the
import line would read `from azureml.core import Run`.
"""

import argparse
import os

import numpy as np

from runyard import Run

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--lr", type=float, default=0.5)
parser.add_argument("--samples", type=int, default=2000)
args = parser.parse_args()

run = Run.get_context()
run.log("learning_rate", args.lr)
run.tag("model", "logistic-regression")

rng = np.random.default_rng(7)
half = args.samples // 2
features = np.vstack([rng.normal(-1.0, 1.2, (half, 2)), rng.normal(1.0, 1.2, (half, 2))])
labels = np.concatenate([np.zeros(half), np.ones(half)])
order = rng.permutation(len(labels))
features, labels = features[order], labels[order]
split = int(0.8 * len(labels))
x_train, y_train, x_test, y_test = features[:split], labels[:split], features[split:], labels[split:]
print(f"Training on {len(y_train)} samples, testing on {len(y_test)}")

weights, bias = np.zeros(2), 0.0
for epoch in range(args.epochs):
    probs = 1 / (1 + np.exp(-(x_train @ weights + bias)))
    loss = float(-np.mean(y_train * np.log(probs + 1e-9) + (1 - y_train) * np.log(1 - probs + 1e-9)))
    weights -= args.lr * (x_train.T @ (probs - y_train)) / len(y_train)
    bias -= args.lr * float(np.mean(probs - y_train))
    accuracy = float(np.mean(((x_test @ weights + bias) > 0) == y_test))
    run.log("loss", loss, step=epoch)
    run.log("accuracy", accuracy, step=epoch)
    if epoch % 5 == 0 or epoch == args.epochs - 1:
        print(f"epoch {epoch:3d}  loss {loss:.4f}  test accuracy {accuracy:.3f}")

predicted = (x_test @ weights + bias) > 0
for cls in (0, 1):
    mask = y_test == cls
    run.log_row("per_class", cls=cls, support=int(mask.sum()), recall=float(np.mean(predicted[mask] == cls)))

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3))
    axis.scatter(x_test[:, 0], x_test[:, 1], c=y_test, s=6, cmap="coolwarm")
    xs = np.linspace(-4, 4, 10)
    axis.plot(xs, -(weights[0] * xs + bias) / (weights[1] + 1e-9), "k--", label="decision boundary")
    axis.legend()
    run.log_image("decision_boundary", plot=figure)
except ImportError:
    print("matplotlib not installed; skipping the decision-boundary image")

os.makedirs("outputs", exist_ok=True)
np.savez("outputs/model.npz", weights=weights, bias=bias)
print("Saved outputs/model.npz")

"""Step 1: make a data set (two noisy blobs) and split it into train and test."""

import argparse
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=4000)
parser.add_argument("--output", required=True)
args = parser.parse_args()

rng = np.random.default_rng(7)
half = args.samples // 2
x = np.vstack([rng.normal(-1.0, 1.3, (half, 2)), rng.normal(1.0, 1.3, (half, 2))])
y = np.concatenate([np.zeros(half), np.ones(half)])
order = rng.permutation(len(y))
x, y = x[order], y[order]
split = int(0.8 * len(y))
# No os.makedirs needed: runyard creates every output folder before the step starts.
np.savez(os.path.join(args.output, "train.npz"), x=x[:split], y=y[:split])
np.savez(os.path.join(args.output, "test.npz"), x=x[split:], y=y[split:])
print(f"wrote {split} training and {len(y) - split} test samples to {args.output}")

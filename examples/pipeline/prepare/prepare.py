"""Step 1: make a data set (two noisy blobs), split it into train and test, and write it as CSV.

The pipeline reads this output as a tabular dataset (`read_delimited_files()`) and registers it as
`demo-samples` when the step completes, so later steps, notebooks and the studio read it by name."""

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
with open(os.path.join(args.output, "samples.csv"), "w") as fh:
    fh.write("x1,x2,label,split\n")
    for index in range(len(y)):
        part = "train" if index < split else "test"
        fh.write(f"{x[index, 0]:.6f},{x[index, 1]:.6f},{int(y[index])},{part}\n")
print(f"wrote {split} training and {len(y) - split} test samples to {args.output}")

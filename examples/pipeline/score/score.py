"""Batch scoring: a ParallelRunStep entry script, written as for Azure ML.

Every worker process imports this file once and calls init() once, then run(mini_batch) for each
mini-batch it is handed: here a list of PNG file paths. run() returns one line per image; with
output_action="append_row" the lines of all mini-batches end up in one output file.
"""

import argparse
import os

import numpy as np
from azureml.core.model import Model  # runyard answers azureml imports inside its jobs
from azureml_user.parallel_run import EntryScript
from PIL import Image

model: dict[str, np.ndarray] = {}


def init() -> None:
    """Load the registered model once per worker (the model name comes from the step's arguments)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name", required=True)
    args, _unknown = parser.parse_known_args()
    path = Model.get_model_path(args.model_name)
    with np.load(path) as stored:
        model.update(weights=stored["weights"], bias=stored["bias"])
    EntryScript().logger.info("loaded model %s from %s", args.model_name, path)


def _pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32)


def run(mini_batch: list[str]) -> list[str]:
    """Score each image: 'file digit probability'."""
    pixels = np.stack([_pixels(path) for path in mini_batch])
    logits = pixels.reshape(len(pixels), -1) / 255.0 @ model["weights"] + model["bias"]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    best = probs.argmax(axis=1)
    return [
        f"{os.path.basename(path)} {digit} {probs[row, digit]:.3f}"
        for row, (path, digit) in enumerate(zip(mini_batch, best, strict=True))
    ]

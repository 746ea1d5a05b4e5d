"""The batch-scoring demo's images and model: digits 0-9 as 28x28 grayscale PNG files, and a softmax
classifier trained on them with numpy.

Why drawn digits: the handwritten digits the issue suggests ship with scikit-learn, which is not one of
runyard's dependencies, and the demo must run offline with what `make demo` installs. Pillow is there
(matplotlib brings it), so the digits are drawn with Pillow in the fonts at hand (Pillow's own Aileron and
matplotlib's DejaVu family), each one shifted, rotated, thickened and blurred at random, then written as
real PNG files that the scoring step reads back with Pillow like any other image folder.

The model is plain numpy (weights and bias in an .npz file), so the scoring environment needs only numpy
(runyard's layer) and Pillow to read the images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZE = 28


def _fonts() -> list[Path | None]:
    """Pillow's built-in font (None) plus the TrueType fonts matplotlib ships, when it is installed."""
    fonts: list[Path | None] = [None]
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        fonts += sorted(p for p in folder.glob("DejaVu*.ttf") if "Display" not in p.name)
    except ImportError:
        pass
    return fonts


def draw_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images (uint8, count x 28 x 28, white digit on black as in MNIST) and their labels."""
    rng = np.random.default_rng(seed)
    fonts = _fonts()
    loaded: dict[tuple[int, int], ImageFont.ImageFont | ImageFont.FreeTypeFont] = {}
    images = np.zeros((count, SIZE, SIZE), dtype=np.uint8)
    labels = rng.integers(0, 10, count)
    for index, label in enumerate(labels):
        size = int(rng.integers(17, 25))
        which = int(rng.integers(len(fonts)))
        if (which, size) not in loaded:
            choice = fonts[which]
            loaded[which, size] = (
                ImageFont.load_default(size) if choice is None else ImageFont.truetype(str(choice), size)
            )
        font = loaded[which, size]
        canvas = Image.new("L", (SIZE * 2, SIZE * 2), 0)
        draw = ImageDraw.Draw(canvas)
        draw.text(
            (SIZE, SIZE), str(label), fill=255, font=font, anchor="mm", stroke_width=int(rng.integers(0, 2))
        )
        canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
        dx, dy = rng.integers(-1, 2, 2)
        left, top = SIZE // 2 + int(dx), SIZE // 2 + int(dy)
        image = canvas.crop((left, top, left + SIZE, top + SIZE))
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 0.9))))
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, (SIZE, SIZE))
        images[index] = np.clip(noisy, 0, 255).astype(np.uint8)
    return images, labels


def write_pngs(images: np.ndarray, folder: Path) -> list[Path]:
    """One PNG file per image: digit-0000.png, digit-0001.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, pixels in enumerate(images):
        path = folder / f"digit-{index:04d}.png"
        Image.fromarray(pixels, mode="L").save(path)
        paths.append(path)
    return paths


def features(images: np.ndarray) -> np.ndarray:
    """What the model sees: pixels scaled to [0, 1], one row per image (score.py does the same)."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def train(
    images: np.ndarray, labels: np.ndarray, epochs: int = 100, lr: float = 0.5
) -> dict[str, np.ndarray]:
    """Multinomial logistic regression by full-batch gradient descent: weights (784 x 10) and bias (10)."""
    x = features(images)
    onehot = np.eye(10, dtype=np.float32)[labels]
    weights = np.zeros((x.shape[1], 10), dtype=np.float32)
    bias = np.zeros(10, dtype=np.float32)
    for _ in range(epochs):
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        grad = (probs - onehot) / len(x)
        weights -= lr * (x.T @ grad)
        bias -= lr * grad.sum(axis=0)
    return {"weights": weights, "bias": bias}


def accuracy(model: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray) -> float:
    predicted = np.argmax(features(images) @ model["weights"] + model["bias"], axis=1)
    return float(np.mean(predicted == labels))

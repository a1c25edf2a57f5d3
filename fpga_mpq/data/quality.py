"""Input quality: image corruptions with severities, and mixed-quality data sets that keep each
sample's quality level.

A sample's *quality level* is its corruption's severity: 0 is clean, 1..3 mild to severe, whatever
the corruption family (the families differ in kind, the levels in how much of the image survives).
Images are (N, C, H, W) floats in [0, 1]; every corruption maps into [0, 1] again, so the network's
input quantizer sees the same range at every level. The severities scale with the image size
(blur radius, pixel block, patch side), so 8x8 digits and 28x28 Fashion-MNIST degrade alike.

A mixed-quality split holds every image once per level (clean, then each severity with a family
drawn at random per copy): a model is compared across levels on the same images, and a level's
accuracy is measured on all of them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

LEVELS = 4  # clean + three severities
LEVEL_NAMES = ("clean", "mild", "moderate", "severe")
QUALITY_SEED = 1


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.08, 0.16, 0.32)[severity - 1]
    return x + rng.normal(0.0, sigma, x.shape).astype(np.float32)


def blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.6, 1.0, 1.5)[severity - 1] * x.shape[-1] / 16  # pixels, scaled with the image
    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="constant")


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Down-sample by 2, 3 or 4 (nearest) and back up: blocks of one value."""
    factor = severity + 1
    h, w = x.shape[-2:]
    rows = (np.arange(h) // factor) * factor + factor // 2
    cols = (np.arange(w) // factor) * factor + factor // 2
    return x[:, :, np.minimum(rows, h - 1)][:, :, :, np.minimum(cols, w - 1)]


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Pull every pixel towards its image's mean: 60, 35 or 15 % of the contrast is left."""
    keep = (0.6, 0.35, 0.15)[severity - 1]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return mean + (x - mean) * keep


def salt_and_pepper(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    p = (0.04, 0.1, 0.2)[severity - 1]
    u = rng.random(x.shape)
    out = np.where(u < p / 2, 0.0, x)
    return np.where(u > 1 - p / 2, 1.0, out)


def occlusion(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A black square of a quarter, 40 % or half the image side at a random place in each image."""
    h, w = x.shape[-2:]
    side = max(1, round((0.25, 0.4, 0.5)[severity - 1] * h))
    out = x.copy()
    tops, lefts = rng.integers(0, h - side + 1, len(x)), rng.integers(0, w - side + 1, len(x))
    for img, top, left in zip(out, tops, lefts, strict=True):
        img[:, top : top + side, left : left + side] = 0.0
    return out


Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "blur": blur,
    "pixelate": pixelate,
    "contrast": contrast,
    "salt_and_pepper": salt_and_pepper,
    "occlusion": occlusion,
}


def corrupt(x: np.ndarray, family: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` (N, C, H, W) in [0, 1] under one corruption at ``severity`` 0..3 (0: unchanged)."""
    if severity == 0:
        return x.astype(np.float32, copy=True)
    return np.clip(CORRUPTIONS[family](x, severity, rng), 0.0, 1.0).astype(np.float32)


def mixed_quality(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every image once per level: (images, labels, levels). Each corrupted copy draws its family at random."""
    rng = np.random.default_rng(seed)
    names = list(CORRUPTIONS)
    xs, levels = [x.astype(np.float32)], [np.zeros(len(x), np.int64)]
    for severity in range(1, LEVELS):
        fam = rng.integers(0, len(names), len(x))
        out = np.empty_like(xs[0])
        for f, name in enumerate(names):
            pick = fam == f
            out[pick] = corrupt(x[pick], name, severity, rng)
        xs.append(out)
        levels.append(np.full(len(x), severity, np.int64))
    return np.concatenate(xs), np.tile(y, LEVELS), np.concatenate(levels)

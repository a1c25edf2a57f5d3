"""Data sets: the built-in digits, or a user's ``.npz`` with arrays ``X`` (N, F) and ``y`` (N,)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpga_mpq.errors import BadInput

SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """Fixed train/validation/test split; features are float32, labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (shipped with the package), scaled from 0..16 to 0..1."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check a user's data file."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "X" not in f or "y" not in f:
                raise BadInput(f"data file {path} must hold arrays 'X' and 'y', has {sorted(f.files)}")
            x, y = f["X"], f["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise BadInput(f"data file {path} is not a readable .npz: {e}") from None
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise BadInput(f"data file {path}: X must be (N, F) and y (N,), got {x.shape} and {y.shape}")
    if len(x) < 10:
        raise BadInput(f"data file {path}: needs at least 10 samples, has {len(x)}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise BadInput(f"data file {path}: y must hold non-negative integer class labels")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise BadInput(f"data file {path}: X must be finite numbers")
    return x.astype(np.float32), y.astype(np.int64)


def load_split(data: Path | None = None) -> Split:
    """The built-in digits or a user's ``.npz``, split by :func:`split_arrays`."""
    return split_arrays(*(load_digits_arrays() if data is None else load_npz(data)))


def split_arrays(x: np.ndarray, y: np.ndarray) -> Split:
    """Shuffle with a fixed seed and split 60/20/20 into train/validation/test."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    x, y = x[order], y[order]
    a, b = int(0.6 * len(x)), int(0.8 * len(x))
    return Split(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:])

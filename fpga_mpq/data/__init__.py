"""Data sets: the built-in digits, or a user's ``.npz`` with arrays ``X`` (N, F) and ``y`` (N,)."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpga_mpq.errors import BadInput
from fpga_mpq.models.spec import MAX_UNITS

SPLIT_SEED = 0
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip


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


def _read_array(f: np.lib.npyio.NpzFile, name: str, path: Path) -> np.ndarray:
    """One array of the archive; object arrays are refused (loading them would unpickle code)."""
    try:
        a = f[name]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise BadInput(f"data file {path}: array {name!r} holds Python objects, not numbers") from None
        raise BadInput(f"data file {path} is not a readable .npz: array {name!r}: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise BadInput(f"data file {path} is not a readable .npz: array {name!r}: {e}") from None
    if not isinstance(a, np.ndarray):  # a zip member that is not a .npy file comes back as bytes
        raise BadInput(f"data file {path} is not a readable .npz: {name!r} is not a .npy array")
    return a


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check a user's data file."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"data file {path} is a directory, not a .npz file")
    if not path.is_file():
        raise BadInput(f"data file {path} does not exist")
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as e:
        raise BadInput(f"data file {path} cannot be read: {e.strerror}") from None
    # checked here: np.load would take any other bytes for a pickle and answer with its allow_pickle hint
    if not magic:
        raise BadInput(f"data file {path} is empty")
    if magic == NPY_MAGIC:
        raise BadInput(f"data file {path} is a single .npy array; save X and y together with np.savez")
    if not magic.startswith(ZIP_MAGIC):
        raise BadInput(f"data file {path} is not a readable .npz: not a zip archive")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "X" not in f or "y" not in f:
                raise BadInput(f"data file {path} must hold arrays 'X' and 'y', has {sorted(f.files)}")
            x, y = _read_array(f, "X", path), _read_array(f, "y", path)
    except BadInput:
        raise
    except MemoryError:
        raise BadInput(f"data file {path}: its arrays are too large to load into memory") from None
    except Exception as e:  # zipfile, numpy and the codecs raise many types for a corrupt archive
        raise BadInput(f"data file {path} is not a readable .npz: {type(e).__name__}: {e}") from None
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise BadInput(f"data file {path}: X must be (N, F) and y (N,), got {x.shape} and {y.shape}")
    if len(x) < 10:
        raise BadInput(f"data file {path}: needs at least 10 samples, has {len(x)}")
    if x.shape[1] == 0:
        raise BadInput(f"data file {path}: X has 0 features (shape {x.shape})")
    if y.dtype.kind not in "iu" or y.min() < 0:
        raise BadInput(f"data file {path}: y must hold non-negative integer class labels")
    if y.max() >= MAX_UNITS:
        raise BadInput(f"data file {path}: y holds label {y.max()}; a layer has at most {MAX_UNITS} units (classes)")
    if x.dtype.kind == "c":
        raise BadInput(f"data file {path}: X is complex ({x.dtype}); features must be real numbers")
    if x.dtype.kind not in "biuf":  # booleans are 0/1 features; dates, strings, records are not numbers
        raise BadInput(f"data file {path}: X must be finite numbers, has dtype {x.dtype}")
    with np.errstate(over="ignore"):  # overflow is reported below, naming the element
        x32 = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x32))
    if len(bad):  # after the cast: 1e300 is finite in float64 but inf in float32
        i, j = bad[0]
        raise BadInput(f"data file {path}: X must be finite numbers in float32 range, X[{i}, {j}] = {x[i, j]}")
    return x32, y.astype(np.int64)


def load_split(data: Path | None = None) -> Split:
    """The built-in digits or a user's ``.npz``, split by :func:`split_arrays`."""
    return split_arrays(*(load_digits_arrays() if data is None else load_npz(data)))


def split_arrays(x: np.ndarray, y: np.ndarray) -> Split:
    """Shuffle with a fixed seed and split 60/20/20 into train/validation/test."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    x, y = x[order], y[order]
    a, b = int(0.6 * len(x)), int(0.8 * len(x))
    return Split(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:])

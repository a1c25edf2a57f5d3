"""Data sets: built-in digits and Fashion-MNIST (each also as a mixed-quality set, ``digits-quality``
and ``fashion-quality``: :mod:`fpga_mpq.data.quality`), or a user's ``.npz`` with ``X`` and ``y`` (N,)
and optionally ``quality`` (N,), each sample's quality level (0 = best).

``X`` is (N, F) vectors or (N, H, W, C) images (channels last, as users store them). A ``Split``
holds them in the model's layout: (N, F), or (N, C, H, W) as PyTorch and the exported QONNX read
them. An MLP spec reads images flattened in that order.
"""

from __future__ import annotations

import gzip
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpga_mpq.data.quality import QUALITY_SEED, mixed_quality
from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import MAX_UNITS
from fpga_mpq.models.spec import BUILTIN_DATA, Spec

SPLIT_SEED = 0
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_VAL = 10_000  # of the 60,000 training images, kept for validation
# fashion-quality holds every image once per level; these many images keep it Fashion-MNIST's size
FASHION_QUALITY_IMAGES = (15_000, 2_500, 10_000)  # train, validation, test
MAX_LEVELS = 16  # quality levels in a user's data: each becomes one hardware configuration
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
    q_train: np.ndarray | None = None  # each sample's quality level, when the data has them
    q_val: np.ndarray | None = None
    q_test: np.ndarray | None = None

    @property
    def has_quality(self) -> bool:
        return self.q_train is not None

    @property
    def levels(self) -> int:
        """How many quality levels the data has (1 without quality)."""
        if not self.has_quality:
            return 1
        return int(max(self.q_train.max(), self.q_val.max(), self.q_test.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape in the model's layout: (F,) or (C, H, W)."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        return math.prod(self.input_shape)

    def for_spec(self, spec: Spec) -> Split:
        """The split as ``spec``'s model reads it: vectors for an MLP, images for a CNN."""
        if spec.is_mlp:
            return self.flat()
        if len(self.input_shape) != 3:
            raise BadInput(
                f"the spec is a CNN but the data holds vectors of {self.n_features} features: "
                "give images, X of shape (N, H, W, C)"
            )
        return self

    def flat(self) -> Split:
        """Images as vectors, in the model layout's order (C, H, W)."""
        flat = (a.reshape(len(a), -1) if a.ndim > 1 else a for a in self.arrays())
        return Split(*flat, self.q_train, self.q_val, self.q_test)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)

    def with_quality(self) -> Split:
        """The split as a mixed-quality set: every image once per quality level (clean + 3 severities)."""
        pairs = ((self.x_train, self.y_train), (self.x_val, self.y_val), (self.x_test, self.y_test))
        parts = (mixed_quality(x, y, QUALITY_SEED + i) for i, (x, y) in enumerate(pairs))
        (xt, yt, qt), (xv, yv, qv), (xs, ys, qs) = parts
        return Split(xt, yt, xv, yv, xs, ys, qt, qv, qs)

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (shipped with the package) as 1x8x8 images, scaled from 0..16 to 0..1."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), d.target.astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    """One gzipped IDX file (the MNIST format): a big-endian header of dimensions, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion() -> Split:
    """Fashion-MNIST from the Debian package: the official 10k test images; 10k of the 60k training
    images (chosen with a fixed seed) for validation."""
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    names += ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    missing = [n for n in names if not (FASHION_DIR / n).is_file()]
    if missing:
        raise BadInput(
            f"data fashion: {FASHION_DIR / missing[0]} is missing; install the Debian package "
            f"{FASHION_PACKAGE} (apt-get install {FASHION_PACKAGE}, or make install as root)"
        )
    x_tr, y_tr, x_te, y_te = (_read_idx(FASHION_DIR / n) for n in names)

    def images(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float32) / 255.0).reshape(len(a), 1, 28, 28)

    order = np.random.default_rng(SPLIT_SEED).permutation(len(x_tr))
    val, train = order[:FASHION_VAL], order[FASHION_VAL:]
    x_tr, y_tr = images(x_tr), y_tr.astype(np.int64)
    return Split(x_tr[train], y_tr[train], x_tr[val], y_tr[val], images(x_te), y_te.astype(np.int64))


def builtin_name(data: Path | str | None) -> str | None:
    """The built-in data set ``--data`` names (``digits``, ``fashion``, ``digits-quality``,
    ``fashion-quality``), or None for a file."""
    return str(data) if data is not None and str(data) in BUILTIN_DATA else None


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


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read and check a user's data file: X, y and the quality levels (None when it has none)."""
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
            q = _read_array(f, "quality", path) if "quality" in f else None
    except BadInput:
        raise
    except MemoryError:
        raise BadInput(f"data file {path}: its arrays are too large to load into memory") from None
    except Exception as e:  # zipfile, numpy and the codecs raise many types for a corrupt archive
        raise BadInput(f"data file {path} is not a readable .npz: {type(e).__name__}: {e}") from None
    if x.ndim not in (2, 4) or y.ndim != 1 or len(x) != len(y):
        raise BadInput(
            f"data file {path}: X must be (N, F) or (N, H, W, C) images and y (N,), got {x.shape} and {y.shape}"
        )
    if len(x) < 10:
        raise BadInput(f"data file {path}: needs at least 10 samples, has {len(x)}")
    if 0 in x.shape[1:]:
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
        where = ", ".join(map(str, bad[0]))
        raise BadInput(f"data file {path}: X must be finite numbers in float32 range, X[{where}] = {x[tuple(bad[0])]}")
    if x32.ndim == 4:  # channels-last images to PyTorch's NCHW
        x32 = np.ascontiguousarray(x32.transpose(0, 3, 1, 2))
    return x32, y.astype(np.int64), None if q is None else _check_quality(q, len(y), path)


def _check_quality(q: np.ndarray, n: int, path: Path) -> np.ndarray:
    """Quality levels 0..L-1 (0 = best), one per sample, every level present."""
    if q.ndim != 1 or len(q) != n:
        raise BadInput(f"data file {path}: quality must be (N,) = ({n},), one level per sample, got {q.shape}")
    if q.dtype.kind not in "iu" or q.min() < 0:
        raise BadInput(f"data file {path}: quality must hold non-negative integer levels (0 = best quality)")
    if q.max() >= MAX_LEVELS:
        raise BadInput(f"data file {path}: quality holds level {q.max()}; at most {MAX_LEVELS} levels")
    missing = sorted(set(range(int(q.max()) + 1)) - set(np.unique(q).tolist()))
    if missing:
        raise BadInput(f"data file {path}: quality levels must be 0..{q.max()}; no sample has level {missing[0]}")
    return q.astype(np.int64)


def load_split(data: Path | str | None = None, spec: Spec | None = None) -> Split:
    """``--data`` (a built-in name or a ``.npz``), else the spec's own data set, else digits; in the
    layout ``spec``'s model reads (vectors when no spec is given)."""
    name = builtin_name(data) or (spec.data if data is None and spec is not None else None)
    if name in ("fashion", "fashion-quality"):
        split = load_fashion()
        if name == "fashion-quality":
            split = _first(split, FASHION_QUALITY_IMAGES).with_quality()
    elif name in ("digits", "digits-quality") or data is None:
        split = split_arrays(*load_digits_arrays())
        if name == "digits-quality":
            split = split.with_quality()
    else:
        split = split_arrays(*load_npz(Path(data)))
    return split.flat() if spec is None else split.for_spec(spec)


def _first(split: Split, counts: tuple[int, int, int]) -> Split:
    """The first ``counts`` samples of train, validation and test (each is already in random order)."""
    a, b, c = counts
    s = split
    return Split(s.x_train[:a], s.y_train[:a], s.x_val[:b], s.y_val[:b], s.x_test[:c], s.y_test[:c])


def split_arrays(x: np.ndarray, y: np.ndarray, q: np.ndarray | None = None) -> Split:
    """Shuffle with a fixed seed and split 60/20/20 into train/validation/test (quality levels with them)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    x, y = x[order], y[order]
    a, b = int(0.6 * len(x)), int(0.8 * len(x))
    if q is None:
        return Split(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:])
    q = q[order]
    return Split(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], q[:a], q[a:b], q[b:])

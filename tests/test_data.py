"""Data: the fixed digits split and checks on user .npz files."""

import numpy as np
import pytest

from fpga_mpq.data import load_split
from fpga_mpq.errors import BadInput


def test_digits_split_is_fixed_and_complete():
    a, b = load_split(), load_split()
    assert np.array_equal(a.x_test, b.x_test)
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797
    assert a.n_features == 64 and a.n_classes == 10
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0


def test_user_npz_is_loaded(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(50, 16)), y=rng.integers(0, 5, 50))
    assert load_split(tmp_path / "d.npz").n_features == 16


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((20, 4, 4)), "y": np.zeros(20, int)}, "must be \\(N, F\\)"),
        ({"X": np.zeros((20, 4)), "y": np.zeros(19, int)}, "must be \\(N, F\\)"),
        ({"X": np.zeros((20, 4))}, "must hold arrays 'X' and 'y'"),
        ({"X": np.full((20, 4), np.nan), "y": np.zeros(20, int)}, "finite"),
        ({"X": np.zeros((20, 4)), "y": np.full(20, 0.5)}, "integer class labels"),
    ],
)
def test_bad_npz_is_rejected_with_reason(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(BadInput, match=message):
        load_split(tmp_path / "d.npz")


def test_corrupt_npz_is_rejected(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"not a zip")
    with pytest.raises(BadInput, match="not a readable"):
        load_split(tmp_path / "d.npz")

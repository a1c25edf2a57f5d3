"""Input quality: the corruptions, the mixed-quality data sets, and quality levels in a user's .npz."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fpga_mpq.data import load_npz, load_split
from fpga_mpq.data.quality import CORRUPTIONS, LEVELS, corrupt, mixed_quality
from fpga_mpq.errors import BadInput


@pytest.fixture(scope="module")
def images():
    return load_split("digits", None).x_test.reshape(-1, 1, 8, 8)[:200]


@pytest.mark.parametrize("family", sorted(CORRUPTIONS))
def test_each_corruption_keeps_shape_and_range_and_grows_with_severity(images, family):
    damage = []
    for severity in range(LEVELS):
        out = corrupt(images, family, severity, np.random.default_rng(0))
        assert out.shape == images.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        damage.append(float(np.abs(out - images).mean()))
    assert damage[0] == 0.0
    assert damage[1] < damage[2] < damage[3], damage


def test_mixed_quality_holds_every_image_once_per_level_reproducibly(images):
    y = np.arange(len(images))
    x, labels, levels = mixed_quality(images, y, seed=3)
    assert len(x) == LEVELS * len(images)
    assert np.bincount(levels).tolist() == [len(images)] * LEVELS
    assert np.array_equal(labels[levels == 2], y)
    assert np.array_equal(x[levels == 0], images)
    again = mixed_quality(images, y, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((x, labels, levels), again, strict=True))


@pytest.mark.parametrize("name", ["digits-quality", "fashion-quality"])
def test_builtin_quality_sets_are_the_clean_set_at_every_level(name):
    if name == "fashion-quality":
        from fpga_mpq.data import FASHION_DIR

        if not FASHION_DIR.is_dir():
            pytest.skip("dataset-fashion-mnist is not installed")
    s = load_split(name)
    assert s.has_quality and s.levels == LEVELS
    for x, q in ((s.x_train, s.q_train), (s.x_val, s.q_val), (s.x_test, s.q_test)):
        assert len(x) == len(q) and np.bincount(q).tolist() == [len(q) // LEVELS] * LEVELS
    clean = load_split(name.removesuffix("-quality"))
    if name == "digits-quality":
        assert np.array_equal(s.x_test[s.q_test == 0], clean.x_test)


def test_a_npz_may_carry_quality_levels_and_bad_ones_are_named(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6)).astype(np.float32), rng.integers(0, 3, 40)
    np.savez(tmp_path / "ok.npz", X=x, y=y, quality=np.arange(40) % 3)
    _, _, q = load_npz(tmp_path / "ok.npz")
    assert q.tolist() == (np.arange(40) % 3).tolist()
    assert load_split(tmp_path / "ok.npz").levels == 3
    bad = {
        "short": (np.zeros(39, int), "quality must be (N,) = (40,)"),
        "negative": (np.full(40, -1), "non-negative integer levels"),
        "float": (np.zeros(40), "non-negative integer levels"),
        "gap": (np.arange(40) % 2 * 2, "no sample has level 1"),
        "many": (np.arange(40), "at most 16 levels"),
    }
    for name, (quality, message) in bad.items():
        np.savez(tmp_path / f"{name}.npz", X=x, y=y, quality=quality)
        with pytest.raises(BadInput, match=re.escape(message)):
            load_npz(tmp_path / f"{name}.npz")

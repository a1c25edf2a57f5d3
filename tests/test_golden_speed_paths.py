"""The golden model's fast paths equal the plain integer computation bit for bit: float BLAS matmuls
up to the edge of the significand's bound (and the int64 fallback beyond it), threshold lookup
tables and binary searches, pooling by strided slices, grouped/strided/padded convolutions."""

from __future__ import annotations

import numpy as np
import pytest

from fpga_mpq.ir.golden import _conv, _dense, _pool, _threshold, accumulator_dtype, exact_dtype, partial_sum_bound
from fpga_mpq.ir.network import Conv, Dense, Pool, Threshold, accumulator_type
from fpga_mpq.ir.tabulate import apply_threshold
from fpga_mpq.ir.types import FixedType

U26 = FixedType(False, 26, 26)  # max 2**26 - 1
U8 = FixedType(False, 8, 8)  # max 255
S8 = FixedType(True, 8, 8)
W28 = FixedType(True, 28, 28)
B8 = FixedType(True, 8, 8)


def dense(in_type: FixedType, weight, bias=None, bias_type: FixedType = B8) -> Dense:
    weight = np.asarray(weight, dtype=np.int64)
    bias = np.zeros(weight.shape[1], dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    acc = accumulator_type(in_type, weight, 0, bias, bias_type.frac)
    return Dense("d", "x", "y", (weight.shape[1],), in_type, weight, W28, bias, bias_type, acc)


def exact_dense(layer: Dense, x: np.ndarray) -> np.ndarray:
    """Python integers: the reference no rounding can touch."""
    shift = layer.out.frac - layer.in_type.frac - layer.weight_type.frac
    bias = layer.bias.astype(object) * 2 ** (layer.out.frac - layer.bias_type.frac)
    return (x.astype(object) @ layer.weight.astype(object)) * 2**shift + bias


def edge_inputs(in_type: FixedType, n_in: int) -> np.ndarray:
    """The extremes (where the bound is reached) and random values in between."""
    rng = np.random.default_rng(0)
    lo, hi = in_type.min_int, in_type.max_int
    rows = [np.full((1, n_in), hi), np.full((1, n_in), lo), rng.integers(lo, hi, (30, n_in), endpoint=True)]
    return np.vstack(rows).astype(np.int64)


# (2**26 - 1) * (2**27 + 2) = 2**53 - 2: the largest column sum of |w| within float64's bound on U26 inputs
AT_EDGE_53 = [[2**26 + 1], [2**26 + 1]]
PAST_EDGE_53 = [[2**26 + 1], [2**26 + 2]]  # 2**53 + 2**26 - 3: an odd integer float64 cannot hold


def test_float64_path_at_the_edge_of_2_to_53_is_exact():
    layer = dense(U26, AT_EDGE_53)
    assert partial_sum_bound(U26, layer.weight) == 2**53 - 2
    assert accumulator_dtype(layer, layer.weight) is np.float64
    x = edge_inputs(U26, 2)
    got = _dense(layer, x)
    assert got.dtype == np.int64
    assert np.array_equal(got.astype(object), exact_dense(layer, x))
    assert np.array_equal(got, x @ layer.weight)  # the int64 path, for the same layer


def test_int64_fallback_beyond_2_to_53():
    layer = dense(U26, PAST_EDGE_53)
    assert partial_sum_bound(U26, layer.weight) == 2**53 + 2**26 - 3
    assert accumulator_dtype(layer, layer.weight) is np.int64
    x = edge_inputs(U26, 2)
    assert np.array_equal(_dense(layer, x).astype(object), exact_dense(layer, x))
    as_float = (x.astype(np.float64) @ layer.weight.astype(np.float64)).astype(np.int64)
    assert not np.array_equal(as_float, x @ layer.weight)  # why the fallback exists


def test_float32_edge_at_2_to_24():
    third = 65793 // 3  # 255 * 65793 = 2**24 - 1
    at_edge = dense(U8, [[third], [third], [third]])
    past = dense(U8, [[third], [third], [third + 1]])
    assert partial_sum_bound(U8, at_edge.weight) == 2**24 - 1
    assert accumulator_dtype(at_edge, at_edge.weight) is np.float32
    assert accumulator_dtype(past, past.weight) is np.float64
    for layer in (at_edge, past):
        x = edge_inputs(U8, 3)
        assert np.array_equal(_dense(layer, x).astype(object), exact_dense(layer, x))


def test_bound_counts_each_sign_of_the_products_separately():
    """Partial sums lie between the sum of the negative and of the positive products: on unsigned
    inputs a column [+a, -a] reaches 255 a (not 2 * 255 a); on signed inputs both products take
    either sign and 127 a + 128 a is reached."""
    w = np.array([[1000], [-1000]])
    assert partial_sum_bound(U8, w) == 255 * 1000
    assert partial_sum_bound(S8, w) == 255 * 1000
    assert partial_sum_bound(S8, np.array([[1000], [1000]])) == 128 * 2000
    assert partial_sum_bound(U26, np.full((2**12, 1), 2**40)) == 2**63  # int64 sums could overflow


def test_bias_and_shift_count_in_the_bound():
    """The bias is added in the matmul's dtype, after the shift onto the accumulator's grid: both count."""
    w = [[65793 // 3 - 1]] * 3
    x = edge_inputs(U8, 3)
    assert accumulator_dtype(dense(U8, w), np.asarray(w)) is np.float32
    big_bias = dense(U8, w, bias=[2**10], bias_type=FixedType(True, 16, 16))
    fine_bias = dense(U8, w, bias=[3], bias_type=FixedType(True, 8, 6))  # 2 fraction bits: products shift by 2
    for layer in (big_bias, fine_bias):
        assert accumulator_dtype(layer, layer.weight) is np.float64
        assert np.array_equal(_dense(layer, x).astype(object), exact_dense(layer, x))


def test_exact_dtype_limits():
    assert exact_dtype(2**24 - 1) is np.float32
    assert exact_dtype(2**24) is np.float64
    assert exact_dtype(2**53 - 1) is np.float64
    assert exact_dtype(2**53) is np.int64


# -- thresholds ------------------------------------------------------------------------------------


def threshold_layer(in_type: FixedType, n: int, k: int, seed: int) -> Threshold:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(in_type.min_int, in_type.max_int, (n, k), endpoint=True), axis=1)
    values = rng.integers(-8, 8, (n, k + 1))
    return Threshold("t", "x", "y", (n,), in_type, t, values, FixedType(True, 4, 4))


@pytest.mark.parametrize(
    "in_type, samples",
    [
        (FixedType(True, 10, 4), 4000),  # lookup table
        (FixedType(True, 40, 10), 50),  # too many input values for a table: binary search
    ],
)
def test_threshold_paths_equal_the_comparison_loop(in_type, samples):
    layer = threshold_layer(in_type, 6, 15, seed=1)
    m = np.random.default_rng(2).integers(in_type.min_int, in_type.max_int, (samples, 3, 6), endpoint=True)
    m[0, 0] = layer.thresholds[:, 0]  # on a threshold: counts it (t <= x)
    m[0, 1] = layer.thresholds[:, 0] - 1
    m[0, 2] = in_type.max_int
    assert np.array_equal(_threshold(layer, m), apply_threshold(layer, m))


def test_threshold_table_outside_the_input_range_and_unsorted_rows():
    layer = threshold_layer(S8, 4, 5, seed=3)
    m = np.random.default_rng(4).integers(-1000, 1000, (3000, 4))  # beyond the type: clipping keeps counts
    assert np.array_equal(_threshold(layer, m), apply_threshold(layer, m))
    t = layer.thresholds.copy()
    t[:, [0, 1]] = t[:, [1, 0]] + np.array([1, 0])  # not ascending: the comparison loop
    unsorted = Threshold("t", "x", "y", (4,), layer.in_type, t, layer.values, layer.out)
    assert np.array_equal(_threshold(unsorted, m), apply_threshold(unsorted, m))


# -- pooling and convolution against window-by-window references -----------------------------------


def windows(m: np.ndarray, kernel, strides, pads, fill: int) -> np.ndarray:
    """(N, H, W, C) -> (N, OH, OW, KH, KW, C)."""
    pt, pl, pb, pr = pads
    x = np.pad(m, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(1, 2))
    return win[:, :: strides[0], :: strides[1]].transpose(0, 1, 2, 4, 5, 3)


@pytest.mark.parametrize("op", ["max", "sum"])
@pytest.mark.parametrize(
    "kernel, strides, pads",
    [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (2, 1), (1, 0, 1, 2)), ((3, 2), (1, 2), (0, 0, 0, 0))],
)
def test_pool_by_slices_equals_windows(op, kernel, strides, pads):
    in_type = FixedType(True, 6, 3)
    m = np.random.default_rng(5).integers(in_type.min_int, in_type.max_int, (7, 9, 8, 3), endpoint=True)
    win = windows(m, kernel, strides, pads, in_type.min_int if op == "max" else 0)
    ref = win.max(axis=(3, 4)) if op == "max" else win.sum(axis=(3, 4)) << 2
    out = FixedType(True, 14, 9) if op == "sum" else in_type  # sum: 2 more fraction bits (a shift)
    layer = Pool("p", "x", "y", ref.shape[1:], in_type, out, op, kernel, strides, pads)
    assert np.array_equal(_pool(layer, m), ref)


@pytest.mark.parametrize("in_type", [FixedType(False, 4, 2), FixedType(True, 30, 10)])  # float32; int64
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_conv_equals_windows(in_type, groups):
    rng = np.random.default_rng(6)
    c, f, kernel, strides, pads = 4, 8, (3, 2), (2, 1), (1, 0, 1, 1)
    cg, fg = c // groups, f // groups
    w_type = FixedType(True, 24, 20) if in_type.width > 8 else FixedType(True, 4, 2)
    weight = rng.integers(w_type.min_int, w_type.max_int, (*kernel, cg, f), endpoint=True)
    bias, bias_type = rng.integers(-100, 100, f), FixedType(True, 12, 2)
    m = rng.integers(in_type.min_int, in_type.max_int, (5, 7, 6, c), endpoint=True)
    win = windows(m, kernel, strides, pads, 0).astype(object)
    products = [
        np.einsum(
            "nhwijc,ijcf->nhwf", win[..., g * cg : (g + 1) * cg], weight[..., g * fg : (g + 1) * fg].astype(object)
        )
        for g in range(groups)
    ]
    frac = max(in_type.frac + w_type.frac, bias_type.frac)
    shift = frac - in_type.frac - w_type.frac
    ref = np.concatenate(products, axis=-1) * 2**shift + bias.astype(object) * 2 ** (frac - bias_type.frac)
    acc = accumulator_type(in_type, weight.reshape(-1, f), w_type.frac, bias, bias_type.frac)
    layer = Conv("c", "x", "y", ref.shape[1:], in_type, weight, w_type, bias, bias_type, acc, strides, pads, groups)
    assert accumulator_dtype(layer, weight.reshape(-1, f)) is (np.float32 if in_type.width <= 8 else np.int64)
    got = _conv(layer, m)
    assert got.dtype == np.int64
    assert np.array_equal(got.astype(object), ref)


def test_galloping_threshold_search_finds_the_first_reaching_input_like_a_bisection():
    from fpga_mpq.ir.tabulate import _first_reaching

    rng = np.random.default_rng(0)
    for _ in range(300):
        a = int(rng.integers(-500, 0))
        b = int(rng.integers(1, 500))
        edge = int(rng.integers(a, b + 1))  # the first input that reaches
        gap = int(rng.integers(1, 64))
        assert _first_reaching(lambda m, e=edge: m >= e, a, b, gap) == edge

"""The IR -> da4ml tracer: every ap_fixed cast and threshold, exhaustively, against the IR semantics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import Activation, Threshold
from fpga_mpq.ir.types import FixedType, Overflow, Rounding, requantize
from fpga_mpq.rtl.trace import trace_single

IN = FixedType(True, 10, 6)  # 4 fraction bits: every rounding case occurs
MODES = [r for r in Rounding]
OVERFLOWS = [Overflow.WRAP, Overflow.SAT, Overflow.SAT_SYM]


def all_values(t: FixedType) -> np.ndarray:
    return np.arange(t.min_int, t.max_int + 1, dtype=np.int64)


def run_comb(comb, m: np.ndarray, t_in: FixedType, out_frac: int) -> np.ndarray:
    got = comb.predict((m * 2.0**-t_in.frac)[:, None].repeat(comb.shape[0], axis=1), n_threads=1)
    return np.round(got[:, 0] * 2.0**out_frac).astype(np.int64)


@pytest.mark.parametrize("rounding, overflow, signed", list(itertools.product(MODES, OVERFLOWS, [True, False])))
def test_cast_matches_the_ir_for_every_input_value(rounding, overflow, signed):
    out = FixedType(signed, 5, 4, rounding, overflow)
    layer = Activation("a", "x", "y", (1,), IN, False, out)
    m = all_values(IN)
    got = run_comb(trace_single(layer), m, IN, out.frac)
    assert np.array_equal(got, requantize(m, IN.frac, out))


@pytest.mark.parametrize("rounding", [Rounding.RND_CONV, Rounding.TRN])
def test_relu_then_cast_matches_the_ir(rounding):
    out = FixedType(False, 4, 3, rounding, Overflow.SAT)
    m = all_values(IN)
    got = run_comb(trace_single(Activation("r", "x", "y", (1,), IN, True, out)), m, IN, out.frac)
    assert np.array_equal(got, requantize(np.maximum(m, 0), IN.frac, out))


@pytest.mark.parametrize("values", [[-1, 1], [0, 1, 2, 3], [5, -2, 7, 0]])
def test_thresholds_count_and_map_to_the_output_values(values):
    k = len(values) - 1
    thresholds = np.sort(np.random.default_rng(k).choice(all_values(IN), size=k, replace=False))[None, :]
    out = FixedType(True, 4, 4)
    layer = Threshold("t", "x", "y", (1,), IN, thresholds, np.array([values]), out)
    m = all_values(IN)
    got = run_comb(trace_single(layer), m, IN, out.frac)
    want = np.array(values)[(m[:, None] >= thresholds).sum(axis=1)]
    assert np.array_equal(got, want)


def test_saturate_to_zero_has_no_rtl_lowering():
    out = FixedType(True, 5, 4, Rounding.TRN, Overflow.SAT_ZERO)
    with pytest.raises(BadInput, match="overflow mode AP_SAT_ZERO has no RTL lowering"):
        trace_single(Activation("a", "x", "y", (1,), IN, False, out))

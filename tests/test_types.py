"""Fixed-point types: rounding on ties, overflow, and the printer/parser round trip."""

import numpy as np
import pytest

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.types import (
    QONNX_ROUNDING,
    FixedType,
    Overflow,
    Rounding,
    parse_ap,
    quantize_float,
    requantize,
    to_ap,
    type_for_range,
)

TIES = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
EXPECTED = {
    Rounding.RND_CONV: [-2, -2, 0, 0, 2, 2],  # QONNX ROUND: half to even
    Rounding.RND_INF: [-3, -2, -1, 1, 2, 3],  # QONNX HALF_UP: away from zero
    Rounding.RND_ZERO: [-2, -1, 0, 0, 1, 2],  # QONNX HALF_DOWN: toward zero
    Rounding.RND: [-2, -1, 0, 1, 2, 3],  # toward +inf
    Rounding.RND_MIN_INF: [-3, -2, -1, 0, 1, 2],
    Rounding.TRN: [-3, -2, -1, 0, 1, 2],  # QONNX FLOOR
    Rounding.TRN_ZERO: [-2, -1, 0, 0, 1, 2],  # QONNX DOWN
}


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_float_rounding_on_ties_matches_ap_fixed_semantics(mode):
    t = FixedType(True, 8, 8, mode, Overflow.SAT)
    assert quantize_float(TIES, t).tolist() == EXPECTED[mode]


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_integer_requantize_rounds_ties_like_float_path(mode):
    t = FixedType(True, 8, 8, mode, Overflow.SAT)
    mantissas = (TIES * 2).astype(np.int64)  # same values at 1 fraction bit
    assert requantize(mantissas, 1, t).tolist() == EXPECTED[mode]


def test_qonnx_round_is_half_to_even_and_half_up_is_away_from_zero():
    assert QONNX_ROUNDING["ROUND"] is Rounding.RND_CONV
    assert QONNX_ROUNDING["HALF_UP"] is Rounding.RND_INF
    assert QONNX_ROUNDING["FLOOR"] is Rounding.TRN


def test_saturation_modes_clip_to_type_range():
    x = np.array([-300.0, -128.0, 127.0, 300.0])
    assert quantize_float(x, FixedType(True, 8, 8, Rounding.TRN, Overflow.SAT)).tolist() == [-128, -128, 127, 127]
    assert quantize_float(x, FixedType(True, 8, 8, Rounding.TRN, Overflow.SAT_SYM)).tolist() == [-127, -127, 127, 127]
    assert quantize_float(x, FixedType(False, 8, 8, Rounding.TRN, Overflow.SAT)).tolist() == [0, 0, 127, 255]


def test_wrap_is_twos_complement():
    t = FixedType(True, 4, 4, Rounding.TRN, Overflow.WRAP)
    assert requantize(np.array([7, 8, -9, 17]), 0, t).tolist() == [7, -8, 7, 1]


def test_fraction_bits_scale_values():
    t = FixedType(False, 6, 2, Rounding.RND_CONV, Overflow.SAT)  # step 1/16, max 63/16
    assert quantize_float(np.array([0.03125, 0.09375, 5.0]), t).tolist() == [0, 2, 63]


def test_type_for_range_is_tightest():
    assert type_for_range(-128, 127, 3) == FixedType(True, 8, 5)
    assert type_for_range(0, 255, 0) == FixedType(False, 8, 8)
    assert type_for_range(-1, 0, 10) == FixedType(True, 1, -9)


@pytest.mark.parametrize(
    "t",
    [
        FixedType(True, 16, 6, Rounding.RND_CONV, Overflow.SAT),
        FixedType(False, 6, 0, Rounding.RND_INF, Overflow.SAT),
        FixedType(True, 4, -2, Rounding.TRN, Overflow.WRAP),
    ],
)
def test_ap_printer_and_parser_round_trip(t):
    assert parse_ap(to_ap(t)) == t


def test_parser_rejects_garbage_and_impossible_widths():
    with pytest.raises(BadInput, match="not of the form"):
        parse_ap("fixed<8,3>")
    with pytest.raises(BadInput, match="outside"):
        parse_ap("ap_fixed<0,0>")


def test_nan_input_is_rejected():
    with pytest.raises(BadInput, match="NaN"):
        quantize_float(np.array([np.nan]), FixedType(True, 8, 4))

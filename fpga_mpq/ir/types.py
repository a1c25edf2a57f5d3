"""Exact fixed-point types as immutable values, and integer-mantissa arithmetic on them.

A value of type ``FixedType(signed, width, int_bits, ...)`` is ``m * 2**-frac`` with ``m`` an
integer in ``[min_int, max_int]``. Every tensor of the IR carries one; printers for the targets
(``ap_fixed``) are pure functions of it, never parsed back.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import numpy as np

from fpga_mpq.errors import BadInput


class Rounding(enum.Enum):
    """hls4ml's / Vitis' names for quantization modes (what happens to dropped fraction bits)."""

    TRN = "AP_TRN"  # floor
    TRN_ZERO = "AP_TRN_ZERO"  # toward zero
    RND = "AP_RND"  # ties toward +inf
    RND_ZERO = "AP_RND_ZERO"  # ties toward zero
    RND_INF = "AP_RND_INF"  # ties away from zero
    RND_MIN_INF = "AP_RND_MIN_INF"  # ties toward -inf
    RND_CONV = "AP_RND_CONV"  # ties to even


class Overflow(enum.Enum):
    WRAP = "AP_WRAP"
    SAT = "AP_SAT"
    SAT_ZERO = "AP_SAT_ZERO"
    SAT_SYM = "AP_SAT_SYM"


# QONNX Quant ``rounding_mode`` -> our mode. CEIL and UP have no ap_fixed equivalent.
QONNX_ROUNDING: dict[str, Rounding] = {
    "ROUND": Rounding.RND_CONV,
    "HALF_EVEN": Rounding.RND_CONV,
    "HALF_UP": Rounding.RND_INF,
    "HALF_DOWN": Rounding.RND_ZERO,
    "FLOOR": Rounding.TRN,
    "DOWN": Rounding.TRN_ZERO,
}


@dataclass(frozen=True)
class FixedType:
    """A fixed-point type: ``width`` bits of which ``int_bits`` are integer bits (incl. sign)."""

    signed: bool
    width: int
    int_bits: int
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 62:
            raise BadInput(f"fixed-point width {self.width} is outside 1..62")

    @property
    def frac(self) -> int:
        return self.width - self.int_bits

    @property
    def min_int(self) -> int:
        if not self.signed:
            return 0
        if self.overflow is Overflow.SAT_SYM:
            return -(2 ** (self.width - 1)) + 1
        return -(2 ** (self.width - 1))

    @property
    def max_int(self) -> int:
        return 2 ** (self.width - 1) - 1 if self.signed else 2**self.width - 1

    def __str__(self) -> str:
        return to_ap(self)


def to_ap(t: FixedType) -> str:
    """Print as a Vivado/Vitis ``ap_fixed``/``ap_ufixed`` type with its modes."""
    base = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{base}<{t.width},{t.int_bits},{t.rounding.value},{t.overflow.value}>"


def type_for_range(lo: int, hi: int, frac: int) -> FixedType:
    """Smallest exact (TRN, WRAP) type holding every mantissa in ``[lo, hi]`` at ``frac`` bits."""
    signed = lo < 0
    width = 1
    while True:
        t = FixedType(signed, width, width - frac)
        if t.min_int <= lo and hi <= t.max_int:
            return t
        width += 1


def _round_shift(m: np.ndarray, shift: int, mode: Rounding) -> np.ndarray:
    """Divide integer mantissas by ``2**shift`` (shift > 0) with the given rounding."""
    q = m >> shift
    r = m - (q << shift)
    half = 1 << (shift - 1)
    if mode is Rounding.TRN:
        return q
    if mode is Rounding.TRN_ZERO:
        return q + ((r != 0) & (q < 0))
    above, tie = r > half, r == half
    up = {
        Rounding.RND: above | tie,
        Rounding.RND_MIN_INF: above,
        Rounding.RND_CONV: above | (tie & ((q & 1) == 1)),
        Rounding.RND_INF: above | (tie & (q >= 0)),
        Rounding.RND_ZERO: above | (tie & (q < 0)),
    }[mode]
    return q + up


def _overflow(m: np.ndarray, t: FixedType) -> np.ndarray:
    lo, hi = t.min_int, t.max_int
    if t.overflow in (Overflow.SAT, Overflow.SAT_SYM):
        return np.clip(m, lo, hi)
    if t.overflow is Overflow.SAT_ZERO:
        return np.where((m < lo) | (m > hi), 0, m)
    span = 1 << t.width
    wrapped = m & (span - 1)
    return wrapped - span * (wrapped > hi) if t.signed else wrapped


def requantize(m: np.ndarray, frac: int, t: FixedType) -> np.ndarray:
    """Cast mantissas ``m`` at ``frac`` fraction bits to type ``t`` exactly as ap_fixed does."""
    m = np.asarray(m, dtype=np.int64)
    shift = frac - t.frac
    if shift > 0:
        m = _round_shift(m, shift, t.rounding)
    elif shift < 0:
        m = m << -shift
    return _overflow(m, t)


def quantize_float(x: np.ndarray, t: FixedType) -> np.ndarray:
    """Cast real values to mantissas of ``t``; exact for float32/float64 input (power-of-two scaling)."""
    v = np.asarray(x, dtype=np.float64) * 2.0**t.frac
    if not np.all(np.isfinite(v)):
        raise BadInput("input holds NaN or infinite values")
    if t.rounding is Rounding.RND_CONV:
        q = np.rint(v)  # IEEE round-half-even
    elif t.rounding is Rounding.TRN:
        q = np.floor(v)
    elif t.rounding is Rounding.TRN_ZERO:
        q = np.trunc(v)
    else:
        q = np.floor(v)
        r = v - q  # exact: fraction of a double
        above, tie = r > 0.5, r == 0.5
        q += {
            Rounding.RND: above | tie,
            Rounding.RND_MIN_INF: above,
            Rounding.RND_INF: above | (tie & (q >= 0)),
            Rounding.RND_ZERO: above | (tie & (q < 0)),
        }[t.rounding]
    if t.overflow in (Overflow.SAT, Overflow.SAT_SYM):
        return np.clip(q, t.min_int, t.max_int).astype(np.int64)
    q = np.clip(q, -(2.0**62), 2.0**62)  # beyond any width; WRAP / SAT_ZERO below
    return _overflow(q.astype(np.int64), t)


def to_float(m: np.ndarray, frac: int) -> np.ndarray:
    """Mantissas back to real values (exact in float64 up to 53 bits)."""
    return np.ldexp(np.asarray(m, dtype=np.float64), -frac)


def parse_ap(text: str) -> FixedType:
    """Parse ``ap_fixed<W,I[,Q,O]>`` / ``ap_ufixed<...>`` at the CLI edge (modes default to RND_CONV, SAT)."""
    m = re.fullmatch(r"\s*ap_(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*(\w+)\s*)?(?:,\s*(\w+)\s*)?>\s*", text)
    if not m:
        raise BadInput(f"type {text!r} is not of the form ap_fixed<W,I> or ap_ufixed<W,I[,ROUNDING,OVERFLOW]>")
    unsigned, width, int_bits, rnd, ovf = m.groups()
    try:
        rounding = Rounding(rnd) if rnd else Rounding.RND_CONV
        overflow = Overflow(ovf) if ovf else Overflow.SAT
    except ValueError as e:
        raise BadInput(f"type {text!r}: {e}") from None
    return FixedType(not unsigned, int(width), int(int_bits), rounding, overflow)

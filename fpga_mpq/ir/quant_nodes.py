"""QONNX quantizer nodes (Quant, BipolarQuant): their parameters, checked, and constants folded.

Constants are quantized with qonnx's own functions, so every rounding mode QONNX defines
(including CEIL and UP, which have no ap_fixed equivalent) folds exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import helper

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.types import QONNX_ROUNDING, FixedType, Overflow, type_for_range

MAX_QUANT_BITS = 32
QUANT_OPS = ("Quant", "BipolarQuant")


@dataclass(frozen=True)
class QuantParams:
    """A quantizer with power-of-two scale(s): ``fracs`` are ``-log2(scale)`` per element."""

    signed: bool
    width: int
    narrow: bool
    fracs: np.ndarray
    mode: str  # QONNX rounding mode name
    bipolar: bool  # BipolarQuant, or the 1-bit signed Quant qonnx executes as bipolar

    @property
    def per_tensor(self) -> bool:
        return self.fracs.size == 1

    @property
    def frac(self) -> int:
        return int(self.fracs.max())

    @property
    def int_range(self) -> tuple[int, int]:
        if self.bipolar:
            return -1, 1
        if not self.signed:
            return 0, 2**self.width - 1 - int(self.narrow)
        return -(2 ** (self.width - 1)) + int(self.narrow), 2 ** (self.width - 1) - 1

    def apply(self, x: np.ndarray) -> np.ndarray:
        """qonnx's own float32 semantics of this quantizer (per-tensor)."""
        from qonnx.custom_op.general.bipolar_quant import binary_quant
        from qonnx.custom_op.general.intquant import int_quant

        scale = np.float32(2.0**-self.frac)
        if self.bipolar:
            return binary_quant(x, scale).astype(np.float32)
        return int_quant(x, scale, np.float32(0), np.float32(self.width), self.signed, self.narrow, self.mode)

    def fixed_type(self) -> FixedType | None:
        """The ap_fixed type that implements this quantizer as a plain cast, if one exists."""
        if self.bipolar or not self.per_tensor or self.mode not in QONNX_ROUNDING:
            return None
        if self.narrow and not self.signed:
            return None
        overflow = Overflow.SAT_SYM if self.narrow else Overflow.SAT
        return FixedType(self.signed, self.width, self.width - self.frac, QONNX_ROUNDING[self.mode], overflow)


def attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def power_of_two_exponents(scale: np.ndarray, node_name: str) -> np.ndarray:
    """``-log2(scale)`` per element, or an error naming the node when a scale is not 2**k."""
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise BadInput(f"node {node_name}: scale must be finite and positive, got {scale.ravel()[:4]}")
    mant, exp = np.frexp(scale.astype(np.float64))
    if np.any(mant != 0.5):
        raise BadInput(
            f"node {node_name}: scale {scale.ravel()[:4]} is not a power of two; "
            "exact support for float scales is not implemented yet"
        )
    return (1 - exp).astype(np.int64)


def quant_params(model, node) -> QuantParams:
    """Read and check a Quant / BipolarQuant node's constant parameters."""
    if node.op_type == "BipolarQuant":
        if len(node.input) != 2 or model.get_initializer(node.input[1]) is None:
            raise BadInput(f"node {node.name}: BipolarQuant needs a constant scale")
        fracs = power_of_two_exponents(model.get_initializer(node.input[1]), node.name)
        return QuantParams(True, 1, False, fracs, "ROUND", True)
    if len(node.input) != 4:
        raise BadInput(f"node {node.name}: Quant needs 4 inputs (x, scale, zeropt, bitwidth)")
    scale, zeropt, bits = (model.get_initializer(i) for i in node.input[1:])
    if scale is None or zeropt is None or bits is None:
        raise BadInput(f"node {node.name}: Quant scale, zero point and bit width must be constants")
    if bits.size != 1 or not np.isfinite(bits).all() or bits.ravel()[0] != int(bits.ravel()[0]):
        raise BadInput(f"node {node.name}: bit width {bits.ravel()[:4]} must be one integer")
    width = int(bits.ravel()[0])
    if not 1 <= width <= MAX_QUANT_BITS:
        raise BadInput(f"node {node.name}: bit width {width} is outside 1..{MAX_QUANT_BITS}")
    if np.any(zeropt != 0):
        raise BadInput(f"node {node.name}: non-zero zero point {zeropt.ravel()[:4]} is not supported")
    mode = str(attr(node, "rounding_mode", "ROUND")).upper()
    if mode not in (*QONNX_ROUNDING, "CEIL", "UP"):
        raise BadInput(f"node {node.name}: unknown rounding mode {mode}")
    signed, narrow = bool(attr(node, "signed", 1)), bool(attr(node, "narrow", 0))
    fracs = power_of_two_exponents(scale, node.name)
    return QuantParams(signed, width, narrow, fracs, mode, signed and width == 1)


def fold_constant(model, node, value: np.ndarray) -> tuple[np.ndarray, FixedType]:
    """Quantize a constant with qonnx's own op; return integer mantissas and their exact type."""
    from qonnx.custom_op.general.bipolar_quant import binary_quant
    from qonnx.custom_op.general.intquant import int_quant

    q = quant_params(model, node)
    if not np.all(np.isfinite(value)):
        raise BadInput(f"node {node.name}: constant {node.input[0]} holds NaN or infinite values")
    scale = model.get_initializer(node.input[1])
    if node.op_type == "BipolarQuant":
        out = binary_quant(value, scale)
    else:
        out = int_quant(value, scale, np.float32(0), np.float32(q.width), q.signed, q.narrow, q.mode)
    mantissa = np.ldexp(np.asarray(out, dtype=np.float64), q.frac)
    if np.any(mantissa != np.round(mantissa)):
        raise BadInput(f"node {node.name}: quantized constant is not on its power-of-two grid")
    mantissa = mantissa.astype(np.int64)
    t = q.fixed_type()
    if t is None or not (t.min_int <= mantissa.min() and mantissa.max() <= t.max_int):
        t = type_for_range(int(min(mantissa.min(), 0)), int(max(mantissa.max(), 0)), q.frac)
    return mantissa, t

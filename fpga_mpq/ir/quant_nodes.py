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
    """A quantizer. With power-of-two scales ``fracs`` are ``-log2(scale)`` per element and its
    integers are mantissas at those fraction bits; with a float scale ``fracs`` are 0 and the
    real value is integer x ``scale``."""

    signed: bool
    width: int
    narrow: bool
    fracs: np.ndarray
    mode: str  # QONNX rounding mode name
    bipolar: bool  # BipolarQuant, or the 1-bit signed Quant qonnx executes as bipolar
    scale: np.ndarray  # float32, as in the graph
    pow2: bool

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

        scale = self.scale.astype(np.float32).reshape(-1)[0]
        if self.bipolar:
            return binary_quant(x, scale).astype(np.float32)
        return int_quant(x, scale, np.float32(0), np.float32(self.width), self.signed, self.narrow, self.mode)

    def hardware_values(self, x: np.ndarray) -> np.ndarray:
        """Quantize on the host and express the result in the hardware input's units (exact)."""
        y = np.asarray(self.apply(x), dtype=np.float64)
        if self.pow2:
            return y.astype(np.float32)
        return np.rint(y / float(self.scale.reshape(-1)[0])).astype(np.float32)  # recovers the integer

    def fixed_type(self) -> FixedType | None:
        """The ap_fixed type that implements this quantizer as a plain cast, if one exists."""
        if self.bipolar or not self.pow2 or not self.per_tensor or self.mode not in QONNX_ROUNDING:
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


def power_of_two_exponents(scale: np.ndarray, node_name: str) -> np.ndarray | None:
    """``-log2(scale)`` per element; None for a float (non power-of-two) scale."""
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise BadInput(f"node {node_name}: scale must be finite and positive, got {scale.ravel()[:4]}")
    mant, exp = np.frexp(scale.astype(np.float64))
    if np.any(mant != 0.5):
        return None
    return (1 - exp).astype(np.int64)


def _params(signed, width, narrow, scale, mode, bipolar, node_name) -> QuantParams:
    scale = np.asarray(scale, dtype=np.float32)
    fracs = power_of_two_exponents(scale, node_name)
    pow2 = fracs is not None
    if not pow2:
        if bipolar:
            raise BadInput(f"node {node_name}: bipolar quantizer with a float scale is not supported")
        fracs = np.zeros(scale.shape, dtype=np.int64)
    return QuantParams(signed, width, narrow, fracs, mode, bipolar, scale, pow2)


def quant_params(model, node) -> QuantParams:
    """Read and check a Quant / BipolarQuant node's constant parameters."""
    if node.op_type == "BipolarQuant":
        if len(node.input) != 2 or model.get_initializer(node.input[1]) is None:
            raise BadInput(f"node {node.name}: BipolarQuant needs a constant scale")
        return _params(True, 1, False, model.get_initializer(node.input[1]), "ROUND", True, node.name)
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
    return _params(signed, width, narrow, scale, mode, signed and width == 1, node.name)


@dataclass(frozen=True)
class FoldedConst:
    """A quantized constant: integer mantissas of ``type``; with a float scale, real value =
    mantissa x ``scale`` (float64, broadcastable: per tensor or per output channel)."""

    mantissa: np.ndarray
    type: FixedType
    scale: np.ndarray | None = None


def fold_constant(model, node, value: np.ndarray) -> FoldedConst:
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
    out = np.asarray(out, dtype=np.float64)
    if not q.pow2:
        mantissa = np.rint(out / scale.astype(np.float64)).astype(np.int64)  # recovers the integers exactly
        t = type_for_range(int(min(mantissa.min(), 0)), int(max(mantissa.max(), 0)), 0)
        return FoldedConst(mantissa, t, scale.astype(np.float64))
    mantissa = np.ldexp(out, q.frac)
    if np.any(mantissa != np.round(mantissa)):
        raise BadInput(f"node {node.name}: quantized constant is not on its power-of-two grid")
    mantissa = mantissa.astype(np.int64)
    t = q.fixed_type()
    if t is None or not (t.min_int <= mantissa.min() and mantissa.max() <= t.max_int):
        t = type_for_range(int(min(mantissa.min(), 0)), int(max(mantissa.max(), 0)), q.frac)
    return FoldedConst(mantissa, t)

"""The exact IR: a chain of layers, every tensor typed with a ``FixedType``.

Constants are integer mantissas plus the fraction bits of their type, so nothing downstream ever
sees a float weight. Accumulator types are derived from operand ranges and fan-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.quant_nodes import QuantParams
from fpga_mpq.ir.types import FixedType, type_for_range


@dataclass(frozen=True)
class InputQuant:
    """The float input cast to the hardware input type (the model's first quantizer, or a declared type)."""

    name: str
    n: int
    out: FixedType
    from_model: bool  # False when the model had no input quantizer and the type was declared
    host_quant: QuantParams | None = None  # a quantizer no ap_fixed cast implements: the host applies it


@dataclass(frozen=True)
class Dense:
    """``y = x @ weight + bias`` computed exactly into ``out`` (the accumulator type)."""

    name: str
    in_type: FixedType
    weight: np.ndarray  # int64 (n_in, n_out) mantissas of weight_type
    weight_type: FixedType
    bias: np.ndarray  # int64 (n_out,) mantissas of bias_type
    bias_type: FixedType
    out: FixedType

    @property
    def n_in(self) -> int:
        return self.weight.shape[0]

    @property
    def n_out(self) -> int:
        return self.weight.shape[1]


@dataclass(frozen=True)
class Activation:
    """Optional ReLU, then a cast to ``out`` with its rounding and overflow modes (a QONNX Quant)."""

    name: str
    in_type: FixedType
    relu: bool
    out: FixedType
    n: int

    @property
    def n_out(self) -> int:
        return self.n


@dataclass(frozen=True)
class Threshold:
    """Any monotone-per-channel requantisation (BatchNorm, scale Mul/Div/Sub, float-scale or bipolar
    quantizers) as exact integer thresholds on the accumulator, FINN-style.

    Channel ``c`` outputs ``values[c, k]`` where ``k`` counts the thresholds ``t <= x`` in
    ``thresholds[c]`` (ascending). Tabulated from qonnx's own execution, so exact by construction.
    """

    name: str
    in_type: FixedType
    thresholds: np.ndarray  # int64 (n, k) mantissas of in_type, ascending per row
    values: np.ndarray  # int64 (n, k + 1) mantissas of out
    out: FixedType

    @property
    def n_out(self) -> int:
        return self.thresholds.shape[0]


@dataclass(frozen=True)
class FloatOp:
    """An elementwise float32 op with a constant, run on the host before the input quantizer or
    after the last fixed-point tensor, exactly as ONNX runs it (IEEE float32, correctly rounded)."""

    op: str  # Add, Sub, Mul, Div
    const: np.ndarray  # float32, broadcastable
    const_first: bool  # Sub(c, x) / Div(c, x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        a, b = (self.const, x) if self.const_first else (x, self.const)
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[self.op]
        return fn(a.astype(np.float32), b.astype(np.float32)).astype(np.float32)


@dataclass(frozen=True)
class Softmax:
    """Final softmax: not fixed-point exact in any tool; compared with a stated tolerance."""

    name: str
    in_type: FixedType
    n: int

    @property
    def n_out(self) -> int:
        return self.n


Layer = Dense | Activation | Threshold | Softmax


@dataclass(frozen=True)
class Network:
    input: InputQuant
    layers: tuple[Layer, ...]
    preprocess: tuple[FloatOp, ...] = ()  # host-side, before the input quantizer
    postprocess: tuple[FloatOp, ...] = ()  # host-side, after the last fixed-point tensor
    # An unquantized final layer on float scales: the hardware outputs integer accumulators whose
    # real value is mantissa x head_scale[c] (exact rationals); the host multiplies in float32.
    head_scale: tuple[Fraction, ...] | None = None

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def exact_layers(self) -> tuple[Dense | Activation | Threshold, ...]:
        """The layers whose outputs are fixed point (everything before a final softmax)."""
        return tuple(la for la in self.layers if not isinstance(la, Softmax))


def unsupported_layer(layer: object, stage: str) -> BadInput:
    """The error every stage raises for a layer kind it does not know: never a silent pass-through."""
    name = getattr(layer, "name", "?")
    return BadInput(f"layer {name}: kind {type(layer).__name__} is not supported by {stage}")


def accumulator_type(in_type: FixedType, weight: np.ndarray, w_frac: int, bias: np.ndarray, b_frac: int) -> FixedType:
    """Tightest exact type for ``x @ w + b`` over every input in ``in_type``'s range.

    Works on the actual weight values, so zero weights and small columns narrow it.
    """
    frac = max(in_type.frac + w_frac, b_frac)
    w = weight.astype(object) * 2 ** (frac - in_type.frac - w_frac)
    b = bias.astype(object) * 2 ** (frac - b_frac)
    lo_x, hi_x = in_type.min_int, in_type.max_int
    hi = b + np.where(w > 0, w * hi_x, w * lo_x).sum(axis=0)
    lo = b + np.where(w > 0, w * lo_x, w * hi_x).sum(axis=0)
    return type_for_range(int(min(lo.min(), 0)), int(max(hi.max(), 0)), frac)


def check_reuse_factor(net: Network, reuse_factor: int) -> None:
    """hls4ml shares each multiplier ``reuse_factor`` times: it must divide every dense layer."""
    if reuse_factor < 1:
        raise BadInput(f"reuse factor {reuse_factor} must be at least 1")
    for layer in net.layers:
        if isinstance(layer, Dense) and (layer.n_in * layer.n_out) % reuse_factor:
            raise BadInput(
                f"reuse factor {reuse_factor} does not divide layer {layer.name} "
                f"({layer.n_in}x{layer.n_out} = {layer.n_in * layer.n_out} multiplications)"
            )

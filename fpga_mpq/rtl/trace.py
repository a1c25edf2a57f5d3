"""IR -> da4ml trace: the network's fixed-point layers as one function of fixed-point variables.

da4ml's distributed-arithmetic compiler turns each constant-weight product into a shared
shift-and-add tree. Everything else is traced from its exact IR semantics: every ``ap_fixed``
rounding mode is a floor after adding an offset (which may depend on the sign or on the kept
LSB), overflow is da4ml's WRAP / SAT / SAT_SYM, thresholds are comparators whose count indexes
the output values. A final softmax is not traced: the RTL design ends at the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from da4ml.trace import FixedVariableArray, FixedVariableArrayInput, HWConfig, comb_trace
from da4ml.trace.ops import quantize, relu
from da4ml.types import CombLogic

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import (
    Activation,
    Add,
    Dense,
    ExactLayer,
    Network,
    Threshold,
    input_types,
    unsupported_layer,
)
from fpga_mpq.ir.types import FixedType, Overflow, Rounding

HW = HWConfig(adder_size=1, carry_size=-1, latency_cutoff=-1)  # da4ml's defaults: one delay unit per adder
MAX_THRESHOLDS = 255  # per channel; beyond this a comparator bank is not a sensible circuit
_OVERFLOW = {Overflow.WRAP: "WRAP", Overflow.SAT: "SAT", Overflow.SAT_SYM: "SAT_SYM"}


def kif(t: FixedType) -> tuple[int, int, int]:
    """da4ml's (keep_negative, integer bits without the sign, fraction bits)."""
    return int(t.signed), t.int_bits - int(t.signed), t.frac


def _rounding_offset(x: FixedVariableArray, t_in: FixedType, t_out: FixedType) -> FixedVariableArray | float:
    """What to add before flooring so that the floor rounds as ``t_out.rounding`` does."""
    ulp = 2.0**-t_in.frac
    half = 2.0 ** (t_out.frac * -1 - 1)
    mode = t_out.rounding
    if mode is Rounding.RND:  # half towards +inf
        return half
    if mode is Rounding.RND_MIN_INF:  # half towards -inf
        return half - ulp
    if mode is Rounding.RND_CONV:  # half to even: one ulp more when the kept LSB is odd
        k, i, _ = kif(t_in)
        kept = quantize(x, k, i, t_out.frac)
        lsb = kept - quantize(kept, k, i, t_out.frac - 1)  # 0 or one output ulp
        return lsb * 2.0 ** (t_out.frac - t_in.frac) + (half - ulp)
    negative = x < 0
    if mode is Rounding.RND_INF:  # half away from zero
        return negative * -ulp + half
    if mode is Rounding.RND_ZERO:  # half towards zero
        return negative * ulp + (half - ulp)
    if mode is Rounding.TRN_ZERO:  # towards zero: a negative value rounds up
        return negative * (2.0**-t_out.frac - ulp)
    raise AssertionError(mode)


def cast(x: FixedVariableArray, t_in: FixedType, t_out: FixedType, where: str) -> FixedVariableArray:
    """An ``ap_fixed`` cast from ``t_in`` to ``t_out`` with ``t_out``'s rounding and overflow."""
    if t_out.overflow not in _OVERFLOW:
        raise BadInput(f"layer {where}: overflow mode {t_out.overflow.value} has no RTL lowering")
    if t_out.frac < t_in.frac and t_out.rounding is not Rounding.TRN:
        x = x + _rounding_offset(x, t_in, t_out)
    overflow = _OVERFLOW[t_out.overflow]
    if overflow == "SAT_SYM" and not t_out.signed:
        overflow = "SAT"
    return quantize(x, *kif(t_out), overflow_mode=overflow, round_mode="TRN")


def _threshold(x: FixedVariableArray, layer: Threshold) -> FixedVariableArray:
    n, k = layer.thresholds.shape
    if k > MAX_THRESHOLDS:
        raise BadInput(f"layer {layer.name}: {k} thresholds per channel; the RTL path takes at most {MAX_THRESHOLDS}")
    step_in, step_out = 2.0**-layer.in_type.frac, 2.0**-layer.out.frac
    channels = []
    for c in range(n):
        xc = x[c : c + 1]
        count = sum((xc >= float(t) * step_in for t in layer.thresholds[c]), start=xc * 0)
        values = layer.values[c].astype(np.float64) * step_out
        steps = np.diff(values)
        if k == 0 or np.all(steps == steps[0]):  # evenly spaced levels: an affine map of the count
            channels.append(count * (float(steps[0]) if k else 0.0) + float(values[0]))
        else:
            rom = count.apply(lambda v, table=values: table[np.asarray(v, dtype=np.int64)])
            channels.append(rom.quantize(*kif(layer.out)))
    return np.concatenate(channels)


def trace_layer(layer: ExactLayer, *xs: FixedVariableArray) -> FixedVariableArray:
    """One IR layer applied to traced variables (one array per input, flattened)."""
    match layer:
        case Dense():
            w = layer.weight.astype(np.float64) * 2.0**-layer.weight_type.frac
            b = layer.bias.astype(np.float64) * 2.0**-layer.bias_type.frac
            return xs[0] @ w + b
        case Activation():
            return cast(relu(xs[0]) if layer.relu else xs[0], layer.in_type, layer.out, layer.name)
        case Threshold():
            return _threshold(xs[0], layer)
        case Add():
            return xs[0] + xs[1]  # da4ml widens to hold every sum, as the layer's type does
        case _:
            raise unsupported_layer(layer, "the RTL tracer")


@dataclass(frozen=True)
class Traced:
    """The traced design: its combinational logic, and where its output sits in the IR."""

    comb: CombLogic
    out_frac: int
    out_tensor: str  # the IR tensor the design outputs (the logits when a softmax follows)
    layers: tuple[str, ...]


def rtl_layers(net: Network) -> tuple[ExactLayer, ...]:
    """The layers the RTL design implements: everything up to the logits."""
    for layer in net.exact_layers:
        if len(layer.shape) != 1:
            raise BadInput(f"layer {layer.name}: shape {layer.shape}; the RTL path takes flat vectors only")
    return net.exact_layers


def trace_network(net: Network) -> Traced:
    """The whole fixed-point network as one da4ml combinational function."""
    inp = FixedVariableArrayInput(net.input.n, hwconf=HW)
    env = {net.input.output: quantize(inp, *kif(net.input.out))}
    layers = rtl_layers(net)
    for layer in layers:
        env[layer.output] = trace_layer(layer, *(env[name] for name in layer.inputs))
    last = layers[-1]
    return Traced(comb_trace(inp, env[last.output]), last.out.frac, last.output, tuple(la.name for la in layers))


def trace_single(layer: ExactLayer) -> CombLogic:
    """One layer alone, from its declared input types: what the estimator costs per layer."""
    xs = []
    for t in input_types(layer):
        n = layer.n_in if isinstance(layer, Dense) else math.prod(layer.shape)
        k, i, f = kif(t)
        xs.append(FixedVariableArray.from_kif(np.full(n, k), np.full(n, i), np.full(n, f), hwconf=HW))
    inp = xs[0] if len(xs) == 1 else np.concatenate(xs)
    return comb_trace(inp, trace_layer(layer, *xs))

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
    Concat,
    Conv,
    Dense,
    ExactLayer,
    Network,
    Pool,
    Reshape,
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
    for i in range(layer.n):  # channels last: element i is channel i % n
        c, xc = i % n, x[i : i + 1]
        count = sum((xc >= float(t) * step_in for t in layer.thresholds[c]), start=xc * 0)
        values = layer.values[c].astype(np.float64) * step_out
        steps = np.diff(values)
        if k == 0 or np.all(steps == steps[0]):  # evenly spaced levels: an affine map of the count
            channels.append(count * (float(steps[0]) if k else 0.0) + float(values[0]))
        else:
            rom = count.apply(lambda v, table=values: table[np.asarray(v, dtype=np.int64)])
            channels.append(rom.quantize(*kif(layer.out)))
    return np.concatenate(channels)


def _valid_taps(layer: Conv | Pool, shape: tuple[int, ...], oh: int, ow: int) -> list[tuple[int, int, int, int]]:
    """(kh, kw, ih, iw) of the window at output pixel (oh, ow) that fall inside the image."""
    (h, w, _), (sh, sw), (pt, pl, _, _) = shape, layer.strides, layer.pads
    taps = []
    for kh in range(layer.kernel[0]):
        for kw in range(layer.kernel[1]):
            ih, iw = oh * sh + kh - pt, ow * sw + kw - pl
            if 0 <= ih < h and 0 <= iw < w:
                taps.append((kh, kw, ih, iw))
    return taps


def _conv(x: FixedVariableArray, layer: Conv, shape: tuple[int, ...]) -> FixedVariableArray:
    """Per output pixel and group, the window's inputs times the constant weights (padding adds nothing)."""
    kh_, kw_, cg, f = layer.weight.shape
    fg, (oh_, ow_, _) = f // layer.groups, layer.shape
    img = x.reshape(*shape)
    w = layer.weight.astype(np.float64) * 2.0**-layer.weight_type.frac
    b = layer.bias.astype(np.float64) * 2.0**-layer.bias_type.frac
    pixels = []
    for oh in range(oh_):
        for ow in range(ow_):
            taps = _valid_taps(layer, shape, oh, ow)
            for g in range(layer.groups):
                cols = np.concatenate([img[ih, iw, g * cg : (g + 1) * cg] for _, _, ih, iw in taps])
                rows = np.concatenate([w[kh, kw, :, g * fg : (g + 1) * fg] for kh, kw, _, _ in taps])
                pixels.append(cols @ rows + b[g * fg : (g + 1) * fg])
    return np.concatenate(pixels)


def _pool(x: FixedVariableArray, layer: Pool, shape: tuple[int, ...]) -> FixedVariableArray:
    img = x.reshape(*shape)
    pixels = []
    for oh in range(layer.shape[0]):
        for ow in range(layer.shape[1]):
            window = [img[ih, iw] for _, _, ih, iw in _valid_taps(layer, shape, oh, ow)]
            acc = window[0]
            for v in window[1:]:
                acc = np.maximum(acc, v) if layer.op == "max" else acc + v
            pixels.append(acc)
    return np.concatenate(pixels)


def trace_layer(layer: ExactLayer, shapes: list[tuple[int, ...]], *xs: FixedVariableArray) -> FixedVariableArray:
    """One IR layer applied to traced variables (one flat array per input, of ``shapes``)."""
    match layer:
        case Conv():
            return _conv(xs[0], layer, shapes[0])
        case Pool():
            return _pool(xs[0], layer, shapes[0])
        case Reshape():
            return xs[0]  # channels-last order is already the flat order
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
        case Concat():  # channels last: per pixel, the first input's channels, then the second's
            parts = [x.reshape(-1, s[-1]) for x, s in zip(xs, shapes, strict=True)]
            return np.concatenate(parts, axis=1).reshape(-1)
        case _:
            raise unsupported_layer(layer, "the RTL tracer")


@dataclass(frozen=True)
class Traced:
    """The traced design: its combinational logic, and where its output sits in the IR."""

    comb: CombLogic
    out_frac: int
    out_tensor: str  # the IR tensor the design outputs (the logits when a softmax follows)
    layers: tuple[str, ...]


MAX_MACS = 200_000  # constant multiplications in one design: beyond this da4ml's compile takes too long


def rtl_layers(net: Network) -> tuple[ExactLayer, ...]:
    """The layers the RTL design implements: everything up to the logits (fully unrolled, so small)."""
    macs = sum(la.weight.size * math.prod(la.shape[:-1]) for la in net.exact_layers if isinstance(la, Dense | Conv))
    if macs > MAX_MACS:
        raise BadInput(f"the network has {macs} multiplications; the RTL path takes at most {MAX_MACS} (unrolled)")
    return net.exact_layers


def trace_network(net: Network) -> Traced:
    """The whole fixed-point network as one da4ml combinational function."""
    inp = FixedVariableArrayInput(net.input.n, hwconf=HW)
    env = {net.input.output: quantize(inp, *kif(net.input.out))}
    layers, shapes = rtl_layers(net), {name: t.shape for name, t in net.tensors.items()}
    for layer in layers:
        env[layer.output] = trace_layer(layer, [shapes[n] for n in layer.inputs], *(env[n] for n in layer.inputs))
    last = layers[-1]
    return Traced(comb_trace(inp, env[last.output]), last.out.frac, last.output, tuple(la.name for la in layers))


def trace_single(layer: ExactLayer, in_shapes: list[tuple[int, ...]] | None = None) -> CombLogic:
    """One layer alone, from its declared input types (and input shapes, for windows, reshapes and
    concatenations): what the estimator costs per layer."""
    types = input_types(layer)
    in_shapes = in_shapes or [(layer.n_in,) if isinstance(layer, Dense) else tuple(layer.shape)] * len(types)
    xs = []
    for t, shape in zip(types, in_shapes, strict=True):
        n = math.prod(shape)
        k, i, f = kif(t)
        xs.append(FixedVariableArray.from_kif(np.full(n, k), np.full(n, i), np.full(n, f), hwconf=HW))
    inp = xs[0] if len(xs) == 1 else np.concatenate(xs)
    return comb_trace(inp, trace_layer(layer, in_shapes, *xs))

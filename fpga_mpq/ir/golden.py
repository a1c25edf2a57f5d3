"""The golden model: runs the IR on a batch with integer mantissas, bit-exact by construction.

Every simulator (C-sim, RTL) and the QONNX reference are compared against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import (
    Activation,
    Add,
    Concat,
    Conv,
    Dense,
    Network,
    Pool,
    Reshape,
    Softmax,
    Threshold,
    unsupported_layer,
)
from fpga_mpq.ir.tabulate import apply_threshold
from fpga_mpq.ir.types import FixedType, quantize_float, requantize, to_float


@dataclass(frozen=True)
class Trace:
    """One batch through the network: every fixed-point tensor's mantissas, keyed by tensor name
    (in topological order, the input first), and what the graph outputs."""

    mantissas: dict[str, np.ndarray]  # (N, *shape) int64
    fracs: dict[str, int]
    last: str  # the last fixed-point tensor: the hardware's output
    softmax: np.ndarray | None  # float64 probabilities when the network ends in a softmax
    postprocessed: np.ndarray | None  # float32, when host-side float ops follow the last tensor

    @property
    def result(self) -> np.ndarray:
        """The hardware's output mantissas, one row per sample."""
        m = self.mantissas[self.last]
        return m.reshape(len(m), -1)

    @property
    def logits(self) -> np.ndarray:
        """Last fixed-point output as real values."""
        return to_float(self.result, self.fracs[self.last])

    @property
    def output(self) -> np.ndarray:
        """What the QONNX graph outputs: softmax, post-processed floats, or the last tensor."""
        if self.softmax is not None:
            return self.softmax
        return self.postprocessed if self.postprocessed is not None else self.logits


def host_input(net: Network, x: np.ndarray) -> np.ndarray:
    """The float32 values the hardware's input port receives: after the host-side float ops (and
    the input quantizer, when no ap_fixed cast implements it); otherwise the cast is the hardware's."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    x = x.reshape(len(x), -1)
    if x.shape[1] != net.input.n:
        raise BadInput(f"input has {x.shape[1]} features per sample, the model expects {net.input.n}")
    if net.input.perm:  # the model's own layout (NCHW) to the hardware's channels-last order
        x = x.reshape(len(x), *net.input.model_shape).transpose(0, *(p + 1 for p in net.input.perm))
        x = x.reshape(len(x), -1)
    if not np.all(np.isfinite(x)):
        raise BadInput("input holds NaN or infinite values")
    for op in net.preprocess:
        x = op(x)
    if net.input.host_quant is not None:
        x = net.input.host_quant.hardware_values(x)
    return x


def quantize_input(net: Network, x: np.ndarray) -> np.ndarray:
    """Check the batch shape and cast it to the input type (mantissas)."""
    return quantize_float(host_input(net, x), net.input.out)


# Significand bits: every integer of magnitude below 2**bits is exact in the float type.
EXACT_FLOATS: tuple[tuple[type[np.floating], int], ...] = ((np.float32, 24), (np.float64, 53))
CHUNK_ELEMENTS = 1 << 22  # im2col columns per chunk of samples: bounded memory, and faster in cache
LUT_MAX_ENTRIES = 1 << 22  # threshold lookup table cells (channels x input values)


def partial_sum_bound(in_type: FixedType, weight: np.ndarray) -> int:
    """A bound on every value an exact ``x @ weight`` computes for ``x`` in ``in_type``: the operands
    and every partial sum, in any summation order (each partial sum lies between the sum of the
    negative products and the sum of the positive products of its column). It rests on the IR's
    invariant that a tensor's values lie in its type, which every layer here keeps."""
    if weight.size == 0:
        return max(-in_type.min_int, in_type.max_int)
    lo, hi = in_type.min_int, in_type.max_int
    w_max = max(-int(weight.min()), int(weight.max()))
    if w_max * max(-lo, hi) * weight.shape[0] >= 2**63:  # the int64 sums below could overflow
        return 2**63
    ends = np.stack([weight * lo, weight * hi])
    pos = np.maximum(ends.max(axis=0), 0).sum(axis=0)
    neg = np.minimum(ends.min(axis=0), 0).sum(axis=0)
    return max(int(pos.max()), -int(neg.min()), -lo, hi, w_max)


def exact_dtype(bound: int) -> type[np.integer] | type[np.floating]:
    """The narrowest dtype that computes exactly on integers of magnitude up to ``bound``. numpy's
    integer matmul does not use BLAS; float BLAS is ~50x faster and exact when every operand and
    partial sum is an integer the significand holds (gemm sums products: no Strassen). int64
    otherwise, exact because the accumulator type bounds the result."""
    for dtype, bits in EXACT_FLOATS:
        if bound < 2**bits:
            return dtype
    return np.int64


def _aligned_bias(layer: Dense | Conv) -> np.ndarray:
    return layer.bias << (layer.out.frac - layer.bias_type.frac)


def _product_shift(layer: Dense | Conv) -> int:
    """Products onto the accumulator's grid (>= 0: the accumulator keeps every fraction bit)."""
    return layer.out.frac - layer.in_type.frac - layer.weight_type.frac


def accumulator_dtype(layer: Dense | Conv, weight: np.ndarray) -> type[np.integer] | type[np.floating]:
    """The dtype for ``x @ weight``, then ``* 2**shift + bias``: its bound covers every step."""
    bound = partial_sum_bound(layer.in_type, weight)
    bias = _aligned_bias(layer)
    bias_max = max(-int(bias.min()), int(bias.max())) if bias.size else 0
    return exact_dtype(max(bound, (bound << _product_shift(layer)) + bias_max))


def _finish(acc: np.ndarray, shift: int, bias: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = acc * 2**shift + bias`` computed in ``acc``'s dtype, exact within the bound of
    ``accumulator_dtype``; the cast to int64 happens on the way into ``out``."""
    if shift:
        acc *= acc.dtype.type(2**shift)  # a power of two: exact
    np.add(acc, bias.astype(acc.dtype), out=out, casting="unsafe")


def _dense(layer: Dense, m: np.ndarray) -> np.ndarray:
    dtype = accumulator_dtype(layer, layer.weight)
    acc = m.reshape(-1, layer.n_in).astype(dtype, copy=False) @ layer.weight.astype(dtype)
    out = np.empty(acc.shape, dtype=np.int64)
    _finish(acc, _product_shift(layer), _aligned_bias(layer), out)
    return out.reshape(*m.shape[:-1], layer.n_out)


def _pad(m: np.ndarray, pads: tuple[int, int, int, int], fill: int) -> np.ndarray:
    pt, pl, pb, pr = pads
    if not any(pads):
        return m
    return np.pad(m, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)


def _conv(layer: Conv, m: np.ndarray) -> np.ndarray:
    """im2col per group onto the exact matmul, a chunk of samples at a time; the input is cast to
    the matmul's dtype before the windows are copied out (a quarter of the bytes in float32)."""
    kh, kw, cg, f = layer.weight.shape
    fg = f // layer.groups
    oh, ow, _ = layer.shape
    sh, sw = layer.strides
    step = max(1, CHUNK_ELEMENTS // (oh * ow * kh * kw * cg * layer.groups))
    dtype = accumulator_dtype(layer, layer.weight.reshape(kh * kw * cg, f))
    weights = [
        layer.weight[..., g * fg : (g + 1) * fg].reshape(kh * kw * cg, fg).astype(dtype) for g in range(layer.groups)
    ]
    shift, bias = _product_shift(layer), _aligned_bias(layer)
    out = np.empty((len(m), oh, ow, f), dtype=np.int64)
    for start in range(0, len(m), step):
        x = _pad(m[start : start + step].astype(dtype, copy=False), layer.pads, 0)
        win = np.lib.stride_tricks.sliding_window_view(x, layer.kernel, axis=(1, 2))  # (n, H', W', C, KH, KW)
        win = win[:, ::sh, ::sw].transpose(0, 1, 2, 4, 5, 3)  # channels innermost: the copy reads runs
        for g in range(layer.groups):
            cols = win[..., g * cg : (g + 1) * cg].reshape(-1, kh * kw * cg)
            acc = cols @ weights[g]
            part = out[start : start + step, ..., g * fg : (g + 1) * fg]
            _finish(acc.reshape(-1, oh, ow, fg), shift, bias[g * fg : (g + 1) * fg], part)
    return out


def _pool(layer: Pool, m: np.ndarray) -> np.ndarray:
    """Max or sum over the window offsets, one strided slice each: no window copies."""
    if layer.op == "max":  # a padded position holds the type's minimum: it never wins over a real one
        x, reduce = _pad(m, layer.pads, layer.in_type.min_int), np.maximum
    else:
        x, reduce = _pad(m, layer.pads, 0), np.add
    oh, ow, _ = layer.shape
    sh, sw = layer.strides
    out = None
    for i in range(layer.kernel[0]):
        for j in range(layer.kernel[1]):
            tap = x[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            out = tap.astype(np.int64, copy=True) if out is None else reduce(out, tap, out=out)
    if layer.op == "sum":
        out <<= layer.out.frac - layer.in_type.frac
    return out


def _threshold(layer: Threshold, m: np.ndarray) -> np.ndarray:
    """``apply_threshold``'s semantics (count the thresholds ``t <= x``, look the value up), fast:
    a per-channel lookup table over the input's values when it is no larger than the data, else a
    binary search per channel; the comparison loop only when a row is not ascending."""
    t, values = layer.thresholds, layer.values
    n, k = t.shape
    if k == 0 or np.any(t[:, 1:] < t[:, :-1]):
        return apply_threshold(layer, m)
    lo = min(layer.in_type.min_int, int(t.min())) - 1  # below every threshold: counts 0
    hi = max(layer.in_type.max_int, int(t.max()))  # at or above every threshold: counts k
    span = hi - lo + 1
    if n * span <= min(LUT_MAX_ENTRIES, m.size):
        grid = np.arange(lo, hi + 1, dtype=np.int64)
        counts = np.stack([np.searchsorted(t[c], grid, side="right") for c in range(n)])
        table = np.take_along_axis(values, counts, axis=1).ravel()
        idx = np.clip(m, lo, hi)  # exact: clipping outside [lo, hi] keeps the count
        idx += np.arange(n, dtype=np.int64) * span - lo
        return table[idx]
    flat = m.reshape(-1, n)
    counts = np.stack([np.searchsorted(t[c], flat[:, c], side="right") for c in range(n)], axis=1)
    return np.take_along_axis(values.T, counts, axis=0).reshape(m.shape)


def _add(layer: Add, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    (ta, tb), frac = layer.in_types, layer.out.frac
    return (a << (frac - ta.frac)) + (b << (frac - tb.frac))


def _concat(layer: Concat, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    (ta, tb), frac = layer.in_types, layer.out.frac
    return np.concatenate([a << (frac - ta.frac), b << (frac - tb.frac)], axis=-1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run(net: Network, x: np.ndarray) -> Trace:
    """Run a float batch ``(N, n_in)`` through the network, keeping every tensor."""
    m = quantize_input(net, x)
    env = {net.input.output: m.reshape(len(m), *net.input.shape)}
    fracs = {net.input.output: net.input.out.frac}
    softmax = None
    for layer in net.layers:
        match layer:
            case Dense():
                out = _dense(layer, env[layer.input])
            case Activation():
                v = env[layer.input]
                out = requantize(np.maximum(v, 0) if layer.relu else v, layer.in_type.frac, layer.out)
            case Threshold():
                out = _threshold(layer, env[layer.input])
            case Conv():
                out = _conv(layer, env[layer.input])
            case Pool():
                out = _pool(layer, env[layer.input])
            case Reshape():
                v = env[layer.input]
                out = v.reshape(len(v), *layer.shape)
            case Add():
                out = _add(layer, *(env[name] for name in layer.inputs))
            case Concat():
                out = _concat(layer, *(env[name] for name in layer.inputs))
            case Softmax():
                v = env[layer.input]
                softmax = _softmax(to_float(v.reshape(len(v), -1), layer.in_type.frac))
                continue
            case _:
                raise unsupported_layer(layer, "the golden model")
        env[layer.output] = out
        fracs[layer.output] = layer.out.frac
    last = net.exact_layers[-1].output
    post = None
    if net.postprocess:
        post = to_float(env[last].reshape(len(m), -1), fracs[last]).astype(np.float32)
        for op in net.postprocess:
            post = op(post)
    return Trace(env, fracs, last, softmax, post)

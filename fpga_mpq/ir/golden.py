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
from fpga_mpq.ir.types import quantize_float, requantize, to_float


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


FLOAT64_EXACT_BITS = 50  # integer sums below 2**53 are exact in float64, whatever the summation order


def _dense(layer: Dense, m: np.ndarray) -> np.ndarray:
    frac = layer.out.frac
    flat = m.reshape(-1, layer.n_in)
    if layer.out.width <= FLOAT64_EXACT_BITS:  # BLAS is ~50x faster than numpy's integer matmul
        acc = (flat.astype(np.float64) @ layer.weight.astype(np.float64)).astype(np.int64)
    else:
        acc = flat @ layer.weight  # int64, exact: the accumulator type bounds every partial sum
    acc = acc << (frac - layer.in_type.frac - layer.weight_type.frac)
    acc = acc + (layer.bias << (frac - layer.bias_type.frac))
    return acc.reshape(*m.shape[:-1], layer.n_out)


CHUNK_ELEMENTS = 1 << 24  # im2col columns per chunk of samples: bounded memory on large batches


def _windows(m: np.ndarray, layer: Conv | Pool, fill: int) -> np.ndarray:
    """(N, H, W, C) -> (N, OH, OW, KH, KW, C): every window, the padding filled with ``fill``."""
    pt, pl, pb, pr = layer.pads
    x = np.pad(m, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(x, layer.kernel, axis=(1, 2))  # (N, H', W', C, KH, KW)
    sh, sw = layer.strides
    return win[:, ::sh, ::sw].transpose(0, 1, 2, 4, 5, 3)


def _conv(layer: Conv, m: np.ndarray) -> np.ndarray:
    """im2col per group onto the exact matmul, a chunk of samples at a time."""
    kh, kw, cg, f = layer.weight.shape
    fg = f // layer.groups
    oh, ow, _ = layer.shape
    per_sample = oh * ow * kh * kw * cg
    step = max(1, CHUNK_ELEMENTS // per_sample)
    shift = layer.out.frac - layer.in_type.frac - layer.weight_type.frac
    bias = layer.bias << (layer.out.frac - layer.bias_type.frac)
    out = np.empty((len(m), oh, ow, f), dtype=np.int64)
    for start in range(0, len(m), step):
        win = _windows(m[start : start + step], layer, 0)
        for g in range(layer.groups):
            cols = win[..., g * cg : (g + 1) * cg].reshape(-1, kh * kw * cg)
            w = layer.weight[..., g * fg : (g + 1) * fg].reshape(kh * kw * cg, fg)
            if layer.out.width <= FLOAT64_EXACT_BITS:
                acc = (cols.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
            else:
                acc = cols.astype(np.int64) @ w
            out[start : start + step, ..., g * fg : (g + 1) * fg] = acc.reshape(-1, oh, ow, fg)
    return (out << shift) + bias


def _pool(layer: Pool, m: np.ndarray) -> np.ndarray:
    if layer.op == "max":  # a padded position holds the type's minimum: it never wins over a real one
        return _windows(m, layer, layer.in_type.min_int).max(axis=(3, 4))
    return _windows(m, layer, 0).sum(axis=(3, 4), dtype=np.int64) << (layer.out.frac - layer.in_type.frac)


def _add(layer: Add, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    (ta, tb), frac = layer.in_types, layer.out.frac
    return (a << (frac - ta.frac)) + (b << (frac - tb.frac))


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
                out = apply_threshold(layer, env[layer.input])
            case Conv():
                out = _conv(layer, env[layer.input])
            case Pool():
                out = _pool(layer, env[layer.input])
            case Reshape():
                v = env[layer.input]
                out = v.reshape(len(v), *layer.shape)
            case Add():
                out = _add(layer, *(env[name] for name in layer.inputs))
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

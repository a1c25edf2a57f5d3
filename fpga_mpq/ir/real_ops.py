"""Float ops between a float-scaled accumulator and its quantizer, in exact real arithmetic.

Brevitas' default quantizers give tensors float (non power-of-two) scales, and a Linear is often
followed by BatchNorm, a ReLU, a scale or a clamp before the next quantizer. QONNX defines these
on real numbers; we evaluate them on exact rationals per channel, so the thresholds that replace
the chain are the real-number result (a square root, BatchNorm's only irrational step, is exact
when the value is a perfect square and otherwise correct to 2**-200, far below any tie). Sigmoid
and Tanh, the monotone activations Brevitas' ``QuantSigmoid`` / ``QuantTanh`` put before their
quantizer, are evaluated in decimal arithmetic to ``EXP_DIGITS`` significant digits, as far below.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from fpga_mpq.errors import BadInput

ChannelOp = Callable[[Fraction, int], Fraction]  # (value, channel) -> value, monotone in value
SQRT_BITS = 200
OPS = ("BatchNormalization", "Relu", "Clip", "Add", "Sub", "Mul", "Div", "Sigmoid", "Tanh", "HardSigmoid")
EXP_DIGITS = 80
EXP_LIMIT = 400  # beyond |x| = 400, sigmoid and tanh are their limits to far more than EXP_DIGITS


def _exp(x: Fraction) -> Fraction:
    """e**x to EXP_DIGITS significant digits, as a rational."""
    with decimal.localcontext() as ctx:
        ctx.prec = EXP_DIGITS
        return Fraction((decimal.Decimal(x.numerator) / decimal.Decimal(x.denominator)).exp())


def sigmoid(x: Fraction) -> Fraction:
    if abs(x) > EXP_LIMIT:
        return Fraction(int(x > 0))
    return 1 / (1 + _exp(-x))


def tanh(x: Fraction) -> Fraction:
    if abs(x) > EXP_LIMIT:
        return Fraction(1 if x > 0 else -1)
    e = _exp(2 * x)
    return (e - 1) / (e + 1)


def sqrt(r: Fraction) -> Fraction:
    """Exact for perfect squares, else within 2**-SQRT_BITS relative."""
    n, d = r.numerator, r.denominator
    rn, rd = math.isqrt(n), math.isqrt(d)
    if rn * rn == n and rd * rd == d:
        return Fraction(rn, rd)
    return Fraction(math.isqrt(n * d << (2 * SQRT_BITS)), d << SQRT_BITS)


def _per_channel(value: np.ndarray | None, n: int, node, what: str) -> list[Fraction]:
    if value is None:
        raise BadInput(f"node {node.name}: {what} must be a constant")
    flat = np.asarray(value, dtype=np.float64)
    if flat.size == 1:
        flat = np.full(n, flat.reshape(-1)[0])
    elif flat.size == n and max(flat.shape) == n:
        flat = flat.reshape(-1)
    else:
        raise BadInput(f"node {node.name}: {what} of shape {flat.shape} is neither one value nor one per channel ({n})")
    if not np.all(np.isfinite(flat)):
        raise BadInput(f"node {node.name}: {what} holds NaN or infinite values")
    return [Fraction(float(v)) for v in flat]


def channel_op(model, node, live: str, n: int) -> ChannelOp:
    """One node of the chain as a per-channel function on exact rationals.

    ``live`` is the name of the tensor the chain flows through; the other inputs are constants.
    """
    op = node.op_type
    const = [model.get_initializer(x) if x else None for x in node.input]
    if op == "Relu":
        return lambda x, c: max(x, Fraction(0))
    if op == "Sigmoid":
        return lambda x, c: sigmoid(x)
    if op == "Tanh":
        return lambda x, c: tanh(x)
    if op == "HardSigmoid":  # ONNX: max(0, min(1, alpha x + beta)), the attributes in float32
        alpha = Fraction(float(np.float32(_attribute(node, "alpha", 0.2))))
        beta = Fraction(float(np.float32(_attribute(node, "beta", 0.5))))
        return lambda x, c: min(max(alpha * x + beta, Fraction(0)), Fraction(1))
    if op == "BatchNormalization":
        scale, bias, mean, var = (_per_channel(const[i], n, node, what) for i, what in enumerate(_BN, start=1))
        eps = Fraction(float(np.float32(_attribute(node, "epsilon", 1e-5))))
        if any(v + eps <= 0 for v in var):
            raise BadInput(f"node {node.name}: BatchNorm variance + epsilon must be positive")
        gain = [s / sqrt(v + eps) for s, v in zip(scale, var, strict=True)]
        return lambda x, c: (x - mean[c]) * gain[c] + bias[c]
    if op == "Clip":
        lo = _clip_bound(model, node, 1, "min", n)
        hi = _clip_bound(model, node, 2, "max", n)
        return lambda x, c: x if lo is None and hi is None else _clamp(x, lo, hi, c)
    if op in ("Add", "Sub", "Mul", "Div"):
        if live not in node.input[:2]:
            raise BadInput(f"node {node.name}: {op} does not read the chain's tensor {live}")
        const_first = node.input[0] != live
        k = _per_channel(const[0 if const_first else 1], n, node, f"the {op} operand")
        if op == "Div" and (const_first or any(v == 0 for v in k)):
            raise BadInput(f"node {node.name}: Div is supported only by a non-zero constant")
        return {
            "Add": lambda x, c: x + k[c],
            "Sub": (lambda x, c: k[c] - x) if const_first else (lambda x, c: x - k[c]),
            "Mul": lambda x, c: x * k[c],
            "Div": lambda x, c: x / k[c],
        }[op]
    raise BadInput(f"node {node.name}: op {op} is not supported between a float-scaled tensor and its quantizer")


_BN = ("scale", "bias", "mean", "variance")


def _attribute(node, name: str, default: float) -> float:
    for a in node.attribute:
        if a.name == name:
            return float(a.f)
    return default


def _clip_bound(model, node, index: int, name: str, n: int) -> list[Fraction] | None:
    if len(node.input) > index and node.input[index]:
        return _per_channel(model.get_initializer(node.input[index]), n, node, f"Clip {name}")
    for a in node.attribute:
        if a.name == name:
            return [Fraction(float(np.float32(a.f)))] * n
    return None


def _clamp(x: Fraction, lo: list[Fraction] | None, hi: list[Fraction] | None, c: int) -> Fraction:
    if lo is not None:
        x = max(x, lo[c])
    if hi is not None:
        x = min(x, hi[c])
    return x

"""Turn a chain of float ops ending in a quantizer into exact integer thresholds.

Between a fixed-point tensor and the next quantizer QONNX graphs hold float arithmetic
(BatchNormalization, scale Mul/Div, Sub, Relu) that no fixed-point type reproduces bit for bit.
But the chain's input takes finitely many values (every mantissa of its type), so we execute the
chain with qonnx itself on all of them, per channel, and record where the output steps. The
result is exact against qonnx by construction, whatever the float rounding inside the chain.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import onnx
from onnx import TensorProto, helper

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import Threshold
from fpga_mpq.ir.real_ops import ChannelOp
from fpga_mpq.ir.types import FixedType, type_for_range

MAX_TABLE_ROWS = 1 << 20  # inputs tabulated per channel
MAX_STEPS = 1024  # thresholds per channel
FLOAT32_EXACT_BITS = 24


def _subgraph(model, nodes: list, in_name: str, shape: list[int]):
    """A standalone model of ``nodes`` with input ``in_name`` of ``shape``. Every node is elementwise
    (per-channel constants broadcast into the input's shape), so every tensor has ``shape``: declared
    here, not inferred (qonnx's shape inference stands a channels-last BatchNorm in for a random
    constant of the whole shape, minutes for a 2**18-row table)."""
    from qonnx.core.modelwrapper import ModelWrapper

    needed = {i for node in nodes for i in node.input}
    inits = [init for init in model.graph.initializer if init.name in needed]
    out = nodes[-1].output[0]
    graph = helper.make_graph(
        nodes,
        "requant",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, shape)],
        initializer=inits,
        value_info=[helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, shape) for n in nodes[:-1]],
    )
    proto = helper.make_model(graph, opset_imports=list(model.model.opset_import))
    proto.ir_version = min(model.model.ir_version, 10)
    return ModelWrapper(onnx.load_from_string(proto.SerializeToString())), out


def _grid_frac(y: np.ndarray, name: str) -> int:
    """Fewest fraction bits that hold every value exactly (for ops like Trunc that set their own grid)."""
    for frac in range(-32, 64):
        scaled = np.ldexp(y, frac)
        if np.all(scaled == np.round(scaled)):
            return frac
    raise BadInput(f"node {name}: output values are not on any power-of-two grid")


Table = tuple[np.ndarray, np.ndarray, FixedType]  # thresholds (n, k), values (n, k + 1), output type


def can_tabulate(in_type: FixedType) -> bool:
    """Small enough to execute the chain on every input value (and exact in float32)."""
    return in_type.max_int - in_type.min_int + 1 <= MAX_TABLE_ROWS and in_type.width <= FLOAT32_EXACT_BITS


def tabulate(
    model, nodes: list, in_name: str, in_type: FixedType, n: int, out_frac: int | None, image: bool = False
) -> Table:
    """Execute ``nodes`` on every value of ``in_type`` for ``n`` channels; return the thresholds.
    ``out_frac=None`` takes the output grid from the values themselves; ``image`` feeds the
    values as (rows, 1, 1, n) pixels, for channels-last ops."""
    from qonnx.core.onnx_exec import execute_onnx

    name = nodes[-1].name
    rows = in_type.max_int - in_type.min_int + 1
    if rows > MAX_TABLE_ROWS or in_type.width > FLOAT32_EXACT_BITS:
        raise BadInput(
            f"node {name}: its input {in_type} has {rows} values, too many to tabulate the float ops "
            f"{[nd.op_type for nd in nodes[:-1]]} exactly (limit {MAX_TABLE_ROWS})"
        )
    mantissas = np.arange(in_type.min_int, in_type.max_int + 1, dtype=np.int64)
    x = np.ldexp(mantissas.astype(np.float64), -in_type.frac).astype(np.float32)
    shape = [rows, 1, 1, n] if image else [rows, n]
    sub, out = _subgraph(model, nodes, in_name, shape)
    try:
        y = execute_onnx(sub, {in_name: np.repeat(x[:, None], n, axis=1).reshape(shape)})[out]
    except Exception as e:
        raise BadInput(f"node {name}: qonnx cannot execute the ops before it: {e}") from None
    y = np.asarray(y, dtype=np.float64).reshape(rows, n)
    if out_frac is None:
        out_frac = _grid_frac(y, name)
    m = np.ldexp(y, out_frac)
    if not np.all(np.isfinite(m)) or np.any(m != np.round(m)):
        raise BadInput(f"node {name}: output is not on the quantizer's grid")
    m = m.astype(np.int64)
    steps = m[1:] != m[:-1]
    k = int(steps.sum(axis=0).max())
    if k > MAX_STEPS:
        raise BadInput(f"node {name}: requantisation has {k} steps per channel, more than {MAX_STEPS}")
    thresholds = np.full((n, k), in_type.max_int, dtype=np.int64)  # padding: only reached at the top value
    values = np.empty((n, k + 1), dtype=np.int64)
    for c in range(n):
        starts = np.nonzero(steps[:, c])[0] + 1
        thresholds[c, : len(starts)] = mantissas[starts]
        values[c, : len(starts) + 1] = m[np.r_[0, starts], c]
        values[c, len(starts) + 1 :] = m[-1, c]
    out_type = type_for_range(int(min(values.min(), 0)), int(max(values.max(), 0)), out_frac)
    return thresholds, values, out_type


def apply_threshold(layer: Threshold, m: np.ndarray) -> np.ndarray:
    """Golden-model semantics: per channel, count thresholds <= x and look the value up."""
    idx = np.zeros(m.shape, dtype=np.int64)
    for k in range(layer.thresholds.shape[1]):  # few thresholds; vectorised over samples and channels
        idx += m >= layer.thresholds[:, k]
    return layer.values[np.arange(layer.n_out), idx]


def _round(r: Fraction, mode: str) -> int:
    """QONNX rounding modes on an exact rational."""
    if mode in ("ROUND", "HALF_EVEN"):
        return round(r)  # Python rounds Fractions half to even
    sign, a = (1 if r >= 0 else -1), abs(r)
    return {
        "FLOOR": lambda: math.floor(r),
        "CEIL": lambda: math.ceil(r),
        "DOWN": lambda: sign * math.floor(a),
        "UP": lambda: sign * math.ceil(a),
        "HALF_UP": lambda: sign * math.floor(a + Fraction(1, 2)),
        "HALF_DOWN": lambda: sign * math.ceil(a - Fraction(1, 2)),
    }[mode]()


def _first_reaching(reaches, a: int, b: int, gap: int) -> int:
    """The smallest m in [a, b] with ``reaches(m)`` (monotone, and true at b): galloping from a by the
    last gap between thresholds, then bisecting. Thresholds are about evenly spaced, so a few exact
    evaluations find each one where a bisection of the whole input range takes ~log2(range)."""
    step = gap
    while a + step < b and not reaches(a + step):
        a, step = a + step + 1, 2 * step
    b = min(a + step, b)
    while a < b:
        mid = (a + b) // 2
        if reaches(mid):
            b = mid
        else:
            a = mid + 1
    return a


def exact_thresholds(name: str, in_type: FixedType, extra, bias, ops: list[ChannelOp], q) -> Table:
    """Thresholds for ``Quant(ops(x * extra[c] + bias[c]))`` in exact rational arithmetic.

    This is QONNX's real-number semantics for float (non power-of-two) scales. Each op is monotone
    per channel, so each channel's output is monotone in x (rising or falling) and a binary search
    finds every step.
    """
    lo_q, hi_q = q.int_range
    scale = Fraction(float(q.scale.reshape(-1)[0]))
    step = Fraction(2) ** -in_type.frac
    n = len(extra)
    if (hi_q - lo_q) * n > 1 << 16:
        raise BadInput(f"node {name}: {hi_q - lo_q} levels x {n} channels are too many for thresholds")

    def level(m: int, c: int) -> int:
        x = m * step * extra[c] + bias[c]
        for op in ops:
            x = op(x, c)
        if q.bipolar:
            return 1 if x >= 0 else -1
        return _round(min(max(x / scale, Fraction(lo_q)), Fraction(hi_q)), q.mode)

    lo_m, hi_m = in_type.min_int, in_type.max_int
    rows_t, rows_v = [], []
    for c in range(n):
        first, last = level(lo_m, c), level(hi_m, c)
        sign = 1 if last >= first else -1  # falling when a gain is negative (BatchNorm, Mul, Sub)
        ts, vs = [], [first]
        start, gap = lo_m, 1
        for target in range(first + sign, last + sign, sign):  # smallest m reaching each level
            t = _first_reaching(lambda m: sign * level(m, c) >= sign * target, start, hi_m, gap)  # noqa: B023
            if ts:
                gap = max(1, t - ts[-1])
            ts.append(t)
            vs.append(level(t, c))
            start = t
        rows_t.append(ts)
        rows_v.append(vs)
    k = max(len(t) for t in rows_t)
    thresholds = np.full((n, k), hi_m, dtype=np.int64)
    values = np.empty((n, k + 1), dtype=np.int64)
    for c in range(n):
        thresholds[c, : len(rows_t[c])] = rows_t[c]
        values[c, : len(rows_v[c])] = rows_v[c]
        values[c, len(rows_v[c]) :] = rows_v[c][-1]
    frac = q.frac if q.pow2 else 0
    out_type = type_for_range(int(min(values.min(), 0)), int(max(values.max(), 0)), frac)
    return thresholds, values, out_type

"""QONNX graph -> exact IR.

Walks the cleaned graph in topological order. Quant nodes on constants become integer
mantissas; Quant nodes on activations become the output type of an ``Activation``; Gemm, or
MatMul followed by a constant Add, become ``Dense``. Anything that cannot be represented exactly
is rejected with the node's name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import Activation, Dense, InputQuant, Layer, Network, Softmax, accumulator_type
from fpga_mpq.ir.types import QONNX_ROUNDING, FixedType, Overflow, Rounding, quantize_float, type_for_range

MAX_QUANT_BITS = 32
PASS_THROUGH = {"Flatten", "Reshape", "Identity"}


@dataclass(frozen=True)
class FixedConst:
    """A quantized constant: integer mantissas at ``type.frac`` fraction bits."""

    mantissa: np.ndarray
    type: FixedType


def load_qonnx(path: Path):
    """Load and clean a QONNX file; one clear error for a missing or corrupt file."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"model file {path} does not exist")
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError, OSError ...
        raise BadInput(f"model file {path} is not a valid ONNX model: {str(e).splitlines()[0]}") from None
    if not proto.graph.node:
        raise BadInput(f"model file {path} is not a valid ONNX model: the graph has no nodes")
    raw = ModelWrapper(proto)
    for node in raw.graph.node:  # before cleanup: qonnx's shape inference fails on some bad values
        if node.op_type == "Quant" and all(raw.get_initializer(i) is not None for i in node.input[1:]):
            node.name = node.name or f"Quant_{node.output[0]}"
            _quant_params(raw, node)
    try:
        return cleanup_model(raw)
    except Exception as e:
        raise BadInput(f"model file {path}: qonnx cannot clean the graph: {e}") from None


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _power_of_two_exponents(scale: np.ndarray, node_name: str) -> np.ndarray:
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


def _quant_params(model, node) -> tuple[bool, int, np.ndarray, Rounding, Overflow]:
    """Signedness, bit width, fraction bits per element, rounding and overflow of a Quant node."""
    if len(node.input) != 4:
        raise BadInput(f"node {node.name}: Quant needs 4 inputs (x, scale, zeropt, bitwidth)")
    scale, zeropt, bits = (model.get_initializer(i) for i in node.input[1:])
    if scale is None or zeropt is None or bits is None:
        raise BadInput(f"node {node.name}: Quant scale, zero point and bit width must be constants")
    if np.any(zeropt != 0):
        raise BadInput(f"node {node.name}: non-zero zero point {zeropt.ravel()[:4]} is not supported")
    if bits.size != 1 or bits.ravel()[0] != int(bits.ravel()[0]):
        raise BadInput(f"node {node.name}: bit width {bits.ravel()[:4]} must be one integer")
    width = int(bits.ravel()[0])
    if not 1 <= width <= MAX_QUANT_BITS:
        raise BadInput(f"node {node.name}: bit width {width} is outside 1..{MAX_QUANT_BITS}")
    mode = _attr(node, "rounding_mode", "ROUND").upper()
    if mode not in QONNX_ROUNDING:
        raise BadInput(f"node {node.name}: rounding mode {mode} has no exact fixed-point equivalent")
    signed, narrow = bool(_attr(node, "signed", 1)), bool(_attr(node, "narrow", 0))
    if narrow and not signed:
        raise BadInput(f"node {node.name}: narrow unsigned quantization is not supported")
    overflow = Overflow.SAT_SYM if narrow else Overflow.SAT
    return signed, width, _power_of_two_exponents(scale, node.name), QONNX_ROUNDING[mode], overflow


def _quantize_const(model, node, value: np.ndarray) -> FixedConst:
    """Fold a Quant node applied to a constant into integer mantissas (QONNX semantics)."""
    signed, width, fracs, rounding, overflow = _quant_params(model, node)
    if not np.all(np.isfinite(value)):
        raise BadInput(f"node {node.name}: constant {node.input[0]} holds NaN or infinite values")
    frac = int(fracs.max())
    per_elem = np.broadcast_to(fracs, value.shape) if fracs.ndim else fracs
    base = FixedType(signed, width, width - frac, rounding, overflow)
    if fracs.size == 1:
        return FixedConst(quantize_float(value, base), base)
    m = np.zeros(value.shape, dtype=np.int64)
    for f in np.unique(fracs):
        t = FixedType(signed, width, width - int(f), rounding, overflow)
        sel = per_elem == f
        m[sel] = quantize_float(value[sel], t) << (frac - int(f))
    return FixedConst(m, type_for_range(int(min(m.min(), 0)), int(max(m.max(), 0)), frac))


class _Builder:
    """Accumulates IR layers while walking the graph; tracks the live activation tensor."""

    def __init__(self, model, input_type: FixedType | None) -> None:
        self.model = model
        self.consts: dict[str, FixedConst | np.ndarray] = {
            init.name: model.get_initializer(init.name) for init in model.graph.initializer
        }
        inputs = [i for i in model.graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(model.graph.output) != 1:
            raise BadInput(f"model must have one input and one output, has {len(inputs)} and {len(model.graph.output)}")
        self.input_name = inputs[0].name
        shape = model.get_tensor_shape(self.input_name)
        if shape is None or any(not isinstance(d, int) or d <= 0 for d in shape[1:]):
            raise BadInput(f"input {self.input_name}: needs a static shape, got {shape}")
        self.n_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
        self.declared_input = input_type
        self.live = self.input_name
        self.input: InputQuant | None = None
        self.layers: list[Layer] = []
        self.pending_relu: str | None = None
        self.last_op = ""

    # -- helpers -------------------------------------------------------------
    def cur_type(self, node) -> FixedType:
        if self.input is None:
            if self.declared_input is None:
                raise BadInput(
                    f"node {node.name}: the model has no input quantizer; declare the hardware input type "
                    "(--input-type, e.g. 'ap_fixed<16,6>')"
                )
            self.input = InputQuant(self.input_name, self.n_in, self.declared_input, from_model=False)
        return self.layers[-1].out if self.layers else self.input.out

    def fixed_const(self, name: str, node) -> FixedConst:
        c = self.consts.get(name)
        if isinstance(c, FixedConst):
            return c
        if c is None:
            raise BadInput(f"node {node.name}: input {name} is neither the activation nor a constant")
        raise BadInput(f"node {node.name}: constant {name} is not quantized (no Quant node on it)")

    def n_live(self) -> int:
        return self.layers[-1].n_out if self.layers else self.n_in

    def flush_relu(self) -> None:
        """A ReLU not followed by a Quant: exact, output keeps the fraction bits."""
        if self.pending_relu is None:
            return
        t = self.cur_type(None)
        out = type_for_range(0, max(t.max_int, 0), t.frac)
        self.layers.append(Activation(self.pending_relu, t, True, out, self.n_live()))
        self.pending_relu = None

    def dense(self, node, weight: FixedConst, bias: FixedConst | None) -> None:
        self.flush_relu()
        in_type = self.cur_type(node)
        w = weight.mantissa
        if w.ndim != 2 or w.shape[0] != self.n_live():
            raise BadInput(f"node {node.name}: weight shape {w.shape} does not fit {self.n_live()} inputs")
        if bias is None:
            bias = FixedConst(np.zeros(w.shape[1], dtype=np.int64), FixedType(True, 1, 1))
        b = np.broadcast_to(bias.mantissa, (w.shape[1],)).astype(np.int64)
        try:
            acc = accumulator_type(in_type, w, weight.type.frac, b, bias.type.frac)
        except BadInput as e:
            raise BadInput(f"node {node.name}: accumulator too wide ({e})") from None
        self.layers.append(Dense(node.name, in_type, w, weight.type, b, bias.type, acc))

    # -- node handlers -------------------------------------------------------
    def on_quant(self, node) -> None:
        src = node.input[0]
        if src in self.consts:
            value = self.consts[src]
            if isinstance(value, FixedConst):
                raise BadInput(f"node {node.name}: double quantization of constant {src}")
            self.consts[node.output[0]] = _quantize_const(self.model, node, value)
            return
        if src != self.live:
            raise BadInput(f"node {node.name} (Quant): only chains of layers are supported (input {src})")
        signed, width, fracs, rounding, overflow = _quant_params(self.model, node)
        if fracs.size != 1:
            raise BadInput(f"node {node.name}: per-channel activation scales are not supported")
        out = FixedType(signed, width, width - int(fracs.ravel()[0]), rounding, overflow)
        if self.input is None and not self.layers and self.pending_relu is None:
            self.input = InputQuant(node.name, self.n_in, out, from_model=True)
        else:
            relu, name = self.pending_relu is not None, self.pending_relu or node.name
            self.layers.append(Activation(name, self.cur_type(node), relu, out, self.n_live()))
            self.pending_relu = None
        self.live, self.last_op = node.output[0], "Quant"

    def on_gemm(self, node) -> None:
        if _attr(node, "transA", 0) or _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0:
            raise BadInput(f"node {node.name}: Gemm with transA, alpha or beta != default is not supported")
        w = self.fixed_const(node.input[1], node)
        if _attr(node, "transB", 0):
            w = FixedConst(w.mantissa.T, w.type)
        bias = self.fixed_const(node.input[2], node) if len(node.input) > 2 and node.input[2] else None
        self.dense(node, w, bias)

    def on_matmul(self, node) -> None:
        self.dense(node, self.fixed_const(node.input[1], node), None)

    def on_add(self, node) -> None:
        if self.last_op != "MatMul":
            raise BadInput(f"node {node.name}: Add is only supported as the bias of a preceding MatMul")
        const = node.input[1] if node.input[0] == self.live else node.input[0]
        bias = self.fixed_const(const, node)
        matmul = self.layers.pop()
        self.dense(node, FixedConst(matmul.weight, matmul.weight_type), bias)
        self.layers[-1] = replace(self.layers[-1], name=matmul.name)


def _walk(model, input_type: FixedType | None) -> Network:
    b = _Builder(model, input_type)
    graph_out = model.graph.output[0].name
    for node in model.graph.node:
        op = node.op_type
        if not node.name:
            node.name = f"{op}_{node.output[0]}"
        if op == "Quant":
            b.on_quant(node)
            continue
        if node.input[0] != b.live and not (op == "Add" and b.live in node.input):
            raise BadInput(f"node {node.name} ({op}): only chains of layers are supported (input {node.input[0]})")
        if op == "Gemm":
            b.on_gemm(node)
        elif op == "MatMul":
            b.on_matmul(node)
        elif op == "Add":
            b.on_add(node)
        elif op == "Relu":
            b.flush_relu()
            b.pending_relu = node.name
        elif op == "Softmax":
            if node.output[0] != graph_out:
                raise BadInput(f"node {node.name}: Softmax is only supported as the last op")
            b.flush_relu()
            b.layers.append(Softmax(node.name, b.cur_type(node), b.n_live()))
        elif op in PASS_THROUGH:
            pass  # the IR is already flat (N, features)
        else:
            raise BadInput(f"node {node.name}: op {op} is not supported")
        b.live, b.last_op = node.output[0], op
    b.flush_relu()
    if b.live != graph_out:
        raise BadInput(f"graph output {graph_out} is not produced by the chain of layers ending at {b.live}")
    if b.input is None:
        b.cur_type(model.graph.node[0] if model.graph.node else None)
    if not b.layers:
        raise BadInput("model has no layers after its input quantizer")
    return Network(b.input, tuple(b.layers))


def network_from_qonnx(path: Path, input_type: FixedType | None = None) -> Network:
    """Read a QONNX file into the exact IR; ``input_type`` is used only if the model has no input Quant."""
    return _walk(load_qonnx(path), input_type)

"""QONNX graph -> exact IR.

The graph is first normalised by the lowering passes (``ir/passes``), then walked in topological
order as a chain:

- float elementwise ops before the first quantizer stay on the host (``Network.preprocess``);
- Quant / BipolarQuant on constants fold into integer mantissas;
- Gemm, or MatMul followed by a constant Add, become ``Dense``;
- ``[Relu] -> Quant`` with a power-of-two scale and an ap_fixed rounding mode is an ``Activation``
  (a cast); any other float chain ending in a quantizer (BatchNorm, scale Mul/Div/Sub, bipolar or
  CEIL/UP quantizers) becomes an exact ``Threshold`` table;
- float elementwise ops after the last quantizer stay on the host (``Network.postprocess``).

Anything else is rejected with the node's name.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import Activation, Dense, FloatOp, InputQuant, Layer, Network, Softmax, accumulator_type
from fpga_mpq.ir.passes import LOWERING, run_passes
from fpga_mpq.ir.quant_nodes import QUANT_OPS, FoldedConst, fold_constant, quant_params
from fpga_mpq.ir.real_ops import channel_op
from fpga_mpq.ir.tabulate import exact_thresholds, tabulate
from fpga_mpq.ir.types import FixedType, type_for_range

ELEMENTWISE = ("Add", "Sub", "Mul", "Div")
BIAS_GRID_TOLERANCE = Fraction(1, 1 << 16)  # float32 rounding of input scale x weight scale is 2**-24
REQUANT_OPS = (*ELEMENTWISE, "Relu", "Clip", "BatchNormalization")


def load_qonnx(path: Path):
    """Load, check the quantizers, clean with qonnx and lower; one clear error for a bad file."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    if path.is_dir():
        raise BadInput(f"model file {path} is a directory, not an ONNX file")
    if not path.is_file():
        raise BadInput(f"model file {path} does not exist")
    if path.stat().st_size == 0:
        raise BadInput(f"model file {path} is empty")
    try:
        proto = onnx.load(str(path))  # also reads external data files beside it
    except Exception as e:  # protobuf's DecodeError, OSError, a missing external data file ...
        raise BadInput(f"model file {path} is not a valid ONNX model: {_first_line(e)}") from None
    if not proto.graph.node:
        raise BadInput(f"model file {path} is not a valid ONNX model: the graph has no nodes")
    _check_file_structure(proto.graph, path)
    try:
        raw = ModelWrapper(proto)
    except Exception as e:  # qonnx asserts on what it cannot read
        raise BadInput(f"model file {path}: qonnx cannot read the graph: {_first_line(e)}") from None
    _check_before_cleanup(raw)
    try:
        model = cleanup_model(raw)
    except Exception as e:
        raise BadInput(f"model file {path}: qonnx cannot clean the graph: {str(e).splitlines()[0]}") from None
    return run_passes(model, LOWERING)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _first_duplicate(names: list[str]) -> str | None:
    seen = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _check_file_structure(graph: onnx.GraphProto, path: Path) -> None:
    """Names declared twice and unreadable constants: qonnx asserts on them (a traceback) or picks one."""
    described = [v.name for v in (*graph.input, *graph.output, *graph.value_info)]
    name = _first_duplicate(described)
    if name is not None:
        raise BadInput(f"model file {path}: tensor {name} has two ValueInfo entries (graph input, output, value_info)")
    name = _first_duplicate([init.name for init in graph.initializer])
    if name is not None:
        raise BadInput(f"model file {path}: initializer {name} is defined twice")
    name = _first_duplicate([out for node in graph.node for out in node.output if out])
    if name is not None:
        raise BadInput(f"model file {path}: tensor {name} is the output of two nodes")
    for init in graph.initializer:
        try:
            numpy_helper.to_array(init)
        except Exception as e:  # short or missing (external) data, an unsupported data type
            raise BadInput(f"model file {path}: initializer {init.name} cannot be read: {_first_line(e)}") from None


def _check_before_cleanup(model) -> None:
    """Errors qonnx's cleanup would report obscurely (or not at all): cycles and bad quantizers."""
    inits = {i.name for i in model.graph.initializer}
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
    known = inits | {i.name for i in model.graph.input}
    remaining = list(model.graph.node)
    while remaining:  # Kahn's algorithm: what never becomes ready sits on a cycle
        ready = [n for n in remaining if all(x in known or x == "" for x in n.input)]
        if not ready:
            missing = sorted({x for n in remaining for x in n.input if x and x not in known})
            produced = {o for n in remaining for o in n.output}
            if any(x not in produced for x in missing):
                name = next(x for x in missing if x not in produced)
                raise BadInput(f"tensor {name} is used but neither an input, an initializer nor produced by a node")
            raise BadInput(f"the graph has a cycle through node {remaining[0].name} ({remaining[0].op_type})")
        for n in ready:
            known.update(n.output)
            remaining.remove(n)
    for node in model.graph.node:
        if node.op_type in QUANT_OPS and all(model.get_initializer(x) is not None for x in node.input[1:]):
            q = quant_params(model, node)
            if node.input[0] not in inits and not q.per_tensor:
                raise BadInput(f"node {node.name}: per-channel activation scales are not supported")


class _Builder:
    """Walks the chain; ``live`` is the current activation tensor, ``pending`` the float ops after it."""

    def __init__(self, model, input_type: FixedType | None) -> None:
        self.model = model
        inits = {init.name for init in model.graph.initializer}
        self.consts: dict[str, tuple[np.ndarray, FixedType] | None] = {name: None for name in inits}
        inputs = [i for i in model.graph.input if i.name not in inits]
        if len(inputs) != 1 or len(model.graph.output) != 1:
            raise BadInput(f"model must have one input and one output, has {len(inputs)} and {len(model.graph.output)}")
        self.input_name = inputs[0].name
        shape = model.get_tensor_shape(self.input_name)
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape):
            raise BadInput(f"input {self.input_name}: needs a static shape, got {shape}")
        self.n_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
        self.declared_input = input_type
        self.live = self.input_name
        self.input: InputQuant | None = None
        self.preprocess: list[FloatOp] = []
        self.layers: list[Layer] = []
        self.pending: list = []  # float nodes after the last fixed-point tensor
        # Float (non power-of-two) scales: real value = fixed-point value x extra[channel]; a bias
        # on such a tensor cannot join the integer accumulator and waits for the next quantizer.
        self.extra: np.ndarray | None = None  # Fraction per channel
        self.real_bias: np.ndarray | None = None  # Fraction per channel
        self.output_scale: np.float32 | None = None  # a float-scale output quantizer's scale
        self.last_op = ""

    # -- state ---------------------------------------------------------------
    def cur_type(self) -> FixedType:
        return self.layers[-1].out if self.layers else self.input.out

    def n_live(self) -> int:
        return self.layers[-1].n_out if self.layers else self.n_in

    def start_fixed(self, node) -> None:
        """First non-float op with no input quantizer: the declared input type takes its place."""
        if self.input is not None:
            return
        if self.declared_input is None:
            raise BadInput(
                f"node {node.name}: the model has no input quantizer; declare the hardware input type "
                "(--input-type, e.g. 'ap_fixed<16,6>')"
            )
        self.input = InputQuant(self.input_name, self.n_in, self.declared_input, from_model=False)
        self.preprocess.extend(self.float_ops())
        self.pending = []

    def float_ops(self) -> list[FloatOp]:
        ops = []
        for node in self.pending:
            if node.op_type not in ELEMENTWISE:
                raise BadInput(f"node {node.name}: {node.op_type} outside the fixed-point part is not supported")
            const_first = node.input[0] != self.pending_input(node)
            value = self.model.get_initializer(node.input[0 if const_first else 1])
            ops.append(FloatOp(node.op_type, np.asarray(value, dtype=np.float32), const_first))
        return ops

    def pending_input(self, node) -> str:
        i = self.pending.index(node)
        return self.live if i == 0 else self.pending[i - 1].output[0]

    def flush_relu(self) -> None:
        """Resolve pending ops before a MatMul or Softmax: only a bare, exact ReLU may remain."""
        if not self.pending:
            return
        if [n.op_type for n in self.pending] != ["Relu"]:
            ops = " -> ".join(n.op_type for n in self.pending)
            raise BadInput(
                f"node {self.pending[-1].name}: float ops {ops} with no quantizer after them are not supported"
            )
        t = self.cur_type()
        out = type_for_range(0, max(t.max_int, 0), t.frac)
        self.layers.append(Activation(self.pending[0].name, t, True, out, self.n_live()))
        self.live, self.pending = self.pending[0].output[0], []

    # -- node handlers -------------------------------------------------------
    def const(self, name: str, node) -> FoldedConst:
        if name not in self.consts:
            raise BadInput(f"node {node.name}: input {name} is neither the activation nor a constant")
        folded = self.consts[name]
        if folded is None:
            raise BadInput(f"node {node.name}: constant {name} is not quantized (no Quant node on it)")
        return folded

    def on_quant(self, node) -> None:
        if node.input[0] in self.consts:
            if self.consts[node.input[0]] is not None:
                raise BadInput(f"node {node.name}: double quantization of constant {node.input[0]}")
            value = self.model.get_initializer(node.input[0])
            self.consts[node.output[0]] = fold_constant(self.model, node, value)
            return
        q = quant_params(self.model, node)
        if not q.per_tensor:
            raise BadInput(f"node {node.name}: per-channel activation scales are not supported")
        if self.input is None:
            self.on_input_quant(node, q)
            return
        if self.extra is not None or self.real_bias is not None or not q.pow2:
            self.on_float_scale_quant(node, q)
            return
        cast = q.fixed_type()
        if cast is not None and [n.op_type for n in self.pending] in ([], ["Relu"]):
            relu = bool(self.pending)
            name = self.pending[0].name if relu else node.name
            self.layers.append(Activation(name, self.cur_type(), relu, cast, self.n_live()))
        else:
            nodes = [*self.pending, node]
            for n in self.pending:
                if n.op_type not in REQUANT_OPS:
                    raise BadInput(f"node {n.name}: op {n.op_type} is not supported before a quantizer")
            self.layers.append(tabulate(self.model, nodes, self.live, self.cur_type(), self.n_live(), q.frac))
        self.live, self.pending = node.output[0], []

    def on_float_scale_quant(self, node, q) -> None:
        """[bias] -> [BatchNorm / Relu / Clip / scale ops] -> Quant where a float scale is involved:
        exact rational thresholds."""
        n = self.n_live()
        ops, live = [], self.live
        for pending in self.pending:
            ops.append(channel_op(self.model, pending, live, n))
            live = pending.output[0]
        extra = self.extra if self.extra is not None else np.array([Fraction(1)] * n, dtype=object)
        bias = self.real_bias if self.real_bias is not None else np.array([Fraction(0)] * n, dtype=object)
        name = self.pending[0].name if ops else node.name
        self.layers.append(exact_thresholds(name, self.cur_type(), extra, bias, ops, q))
        scale = Fraction(float(q.scale.reshape(-1)[0]))
        self.extra = None if q.pow2 else np.array([scale] * n, dtype=object)
        self.output_scale = None if q.pow2 else np.float32(q.scale.reshape(-1)[0])
        self.real_bias = None
        self.live, self.pending = node.output[0], []

    def on_trunc(self, node) -> None:
        """QONNX Trunc (dropping LSBs, e.g. after an average pool): tabulated like a quantizer."""
        self.start_fixed(node)
        if self.extra is not None or self.real_bias is not None:
            raise BadInput(f"node {node.name}: Trunc on a float-scaled tensor is not supported")
        for n in self.pending:
            if n.op_type not in REQUANT_OPS:
                raise BadInput(f"node {n.name}: op {n.op_type} is not supported before a Trunc")
        nodes = [*self.pending, node]
        self.layers.append(tabulate(self.model, nodes, self.live, self.cur_type(), self.n_live(), None))
        self.live, self.pending = node.output[0], []

    def on_input_quant(self, node, q) -> None:
        self.preprocess.extend(self.float_ops())
        self.pending = []
        cast = q.fixed_type()
        if cast is not None:
            self.input = InputQuant(node.name, self.n_in, cast, from_model=True)
        else:  # bipolar, CEIL/UP or unsigned narrow: the host quantizes, the hardware takes the grid values
            grid = type_for_range(*q.int_range, q.frac)
            self.input = InputQuant(node.name, self.n_in, grid, from_model=True, host_quant=q)
            if not q.pow2:
                self.extra = np.array([Fraction(float(q.scale.reshape(-1)[0]))] * self.n_in, dtype=object)
        self.live = node.output[0]

    def on_matmul(self, node, weight: FoldedConst, bias: FoldedConst | None) -> None:
        self.start_fixed(node)
        self.flush_relu()
        if self.real_bias is not None:
            raise BadInput(f"node {node.name}: a float-scaled bias must be followed by a quantizer")
        in_type = self.cur_type()
        w, w_type = weight.mantissa, weight.type
        if w.ndim != 2 or w.shape[0] != self.n_live():
            raise BadInput(f"node {node.name}: weight shape {w.shape} does not fit {self.n_live()} inputs")
        if self.extra is not None or weight.scale is not None:
            self.extra = self._product_scale(node, weight, w.shape[1])
        self.output_scale = None  # a quantizer's float scale ends here: the accumulator has its own
        if bias is None:
            bias = FoldedConst(np.zeros(w.shape[1], dtype=np.int64), FixedType(True, 1, 1))
        try:
            b = np.broadcast_to(bias.mantissa, (w.shape[1],)).astype(np.int64)
        except ValueError:
            raise BadInput(
                f"node {node.name}: bias shape {bias.mantissa.shape} does not fit {w.shape[1]} outputs"
            ) from None
        try:
            acc = accumulator_type(in_type, w, w_type.frac, b, bias.type.frac)
        except BadInput as e:
            raise BadInput(f"node {node.name}: accumulator too wide ({e})") from None
        self.layers.append(Dense(node.name, in_type, w, w_type, b, bias.type, acc))
        self.live = node.output[0]

    def _product_scale(self, node, weight: FoldedConst, n_out: int) -> np.ndarray:
        """Real scale of each output channel: input scale x that column's weight scale."""
        extra_in = set(self.extra) if self.extra is not None else {Fraction(1)}
        if len(extra_in) != 1:
            raise BadInput(f"node {node.name}: per-channel float scales on a MatMul input are not supported")
        (e_in,) = extra_in
        w_scale = (
            np.ones(n_out) if weight.scale is None else np.broadcast_to(weight.scale.reshape(1, -1), (1, n_out))[0]
        )
        return np.array([e_in * Fraction(float(s)) for s in w_scale], dtype=object)

    def on_add(self, node) -> bool:
        """A constant Add right after a MatMul is its bias; returns False if it is not one."""
        other = node.input[1] if node.input[0] == self.live else node.input[0]
        if self.last_op != "MatMul" or self.pending or self.consts.get(other) is None:
            return False
        bias = self.consts[other]
        if self.extra is not None or bias.scale is not None:  # off the integer grid: the quantizer takes it
            real = bias.mantissa.astype(object) * Fraction(2) ** -bias.type.frac
            scale = np.ones(1) if bias.scale is None else bias.scale
            real = real * np.array([Fraction(float(s)) for s in scale.ravel()], dtype=object)
            self.real_bias = np.broadcast_to(real, (self.n_live(),)).copy()
            self.live = node.output[0]
            return True
        matmul = self.layers.pop()
        self.on_matmul(node, FoldedConst(matmul.weight, matmul.weight_type), bias)
        self.layers[-1] = replace(self.layers[-1], name=matmul.name)
        return True

    def visit(self, node) -> None:
        op = node.op_type
        if op in QUANT_OPS and node.input[0] in self.consts:
            self.on_quant(node)
            return
        chained = self.pending[-1].output[0] if self.pending else self.live
        if chained not in node.input:
            raise BadInput(f"node {node.name} ({op}): only chains of layers are supported (input {node.input[0]})")
        if op in QUANT_OPS:
            self.on_quant(node)
        elif op == "MatMul":
            if node.input[0] != chained:
                raise BadInput(f"node {node.name}: MatMul with the activation as second operand is not supported")
            self.on_matmul(node, self.const(node.input[1], node), None)
        elif op == "Add" and self.on_add(node):
            pass
        elif op == "Trunc":
            self.on_trunc(node)
        elif op in REQUANT_OPS:
            self.pending.append(node)
        elif op == "Softmax":
            self.start_fixed(node)
            self.flush_relu()
            if node.output[0] != self.model.graph.output[0].name:
                raise BadInput(f"node {node.name}: Softmax is only supported as the last op")
            self.layers.append(Softmax(node.name, self.cur_type(), self.n_live()))
            self.live = node.output[0]
        else:
            raise BadInput(f"node {node.name}: op {op} is not supported")
        self.last_op = op

    def finish(self) -> Network:
        graph_out = self.model.graph.output[0].name
        produced = self.pending[-1].output[0] if self.pending else self.live
        if produced != graph_out:
            raise BadInput(f"graph output {graph_out} is not produced by the chain of layers ending at {produced}")
        if self.input is None or not self.layers:
            raise BadInput("model has no fixed-point layers (no MatMul or Gemm after the input)")
        head_scale = None
        if self.extra is not None and self.output_scale is None:
            head_scale = self._integer_head()
        if self.real_bias is not None:  # a float-scaled bias on a power-of-two accumulator: never dropped
            raise BadInput("a float-scaled bias reaches the output without a quantizer: not exact")
        postprocess = tuple(self.float_ops())
        if self.output_scale is not None:  # the output quantizer's float scale, applied as qonnx does
            if postprocess or isinstance(self.layers[-1], Softmax):
                raise BadInput("float ops after a float-scale output quantizer are not supported")
            postprocess = (FloatOp("Mul", np.asarray(self.output_scale, dtype=np.float32), False),)
        if head_scale is not None:
            if postprocess:
                raise BadInput("float ops after an unquantized final layer are not supported")
            postprocess = (FloatOp("Mul", np.array([float(s) for s in head_scale], dtype=np.float32), False),)
        if postprocess and isinstance(self.layers[-1], Softmax):
            raise BadInput("float ops after a Softmax are not supported")
        return Network(self.input, tuple(self.layers), tuple(self.preprocess), postprocess, head_scale)

    def _integer_head(self) -> tuple[Fraction, ...]:
        """An unquantized final layer on float scales (the usual Brevitas classifier head): the
        hardware outputs the exact integer accumulator; its rational scale per channel is the host's.

        A bias quantized at input scale x weight scale (``Int32Bias``) lies on the accumulator's
        grid up to the float32 rounding of that product, and joins the integer sum.
        """
        dense = self.layers[-1]
        if self.pending or not isinstance(dense, Dense):
            through = " -> ".join(n.op_type for n in self.pending) or f"{type(dense).__name__} {dense.name}"
            raise BadInput(f"a float-scaled tensor reaches the output through {through} without a quantizer: not exact")
        units = [e * Fraction(2) ** -dense.out.frac for e in self.extra]
        bias = np.zeros(dense.n_out, dtype=np.int64)
        if self.real_bias is not None:
            ratio = [b / u for b, u in zip(self.real_bias, units, strict=True)]
            bias = np.array([round(r) for r in ratio], dtype=np.int64)
            if any(
                abs(r - int(b)) > BIAS_GRID_TOLERANCE * max(1, abs(int(b))) for r, b in zip(ratio, bias, strict=True)
            ):
                raise BadInput(
                    f"node {dense.name}: the final layer's bias is not on its accumulator's grid (its scale is not "
                    "input scale x weight scale, as Int32Bias sets it); quantize the output to make it exact"
                )
        bias_type = type_for_range(int(min(bias.min(), 0)), int(max(bias.max(), 0)), dense.out.frac)
        acc = accumulator_type(dense.in_type, dense.weight, dense.weight_type.frac, bias, bias_type.frac)
        self.layers[-1] = replace(dense, bias=bias, bias_type=bias_type, out=acc)
        self.real_bias = None
        return tuple(e * Fraction(2) ** -acc.frac for e in self.extra)


def network_from_qonnx(path: Path, input_type: FixedType | None = None) -> Network:
    """Read a QONNX file into the exact IR; ``input_type`` is used only if the model has no input Quant."""
    model = load_qonnx(path)
    b = _Builder(model, input_type)
    for node in model.graph.node:
        b.visit(node)
    return b.finish()

"""QONNX graph -> exact IR.

qonnx cleans the graph (constant folding, shape inference), then our lowering passes
(``ir/passes``) normalise it: shape-only ops go, every dense layer becomes one Gemm reading its
weight as (n_in, n_out) with its bias absorbed. The builder then visits the nodes in topological
order with one handler per op type, keeping for every ONNX tensor a ``Value``: the IR tensor it
derives from and the float ops and scales not yet taken by a layer. So a tensor read twice
(fan-out) and the Add of two tensors (a residual) need no special case:

- float elementwise ops before the input quantizer stay on the host (``Network.preprocess``);
- Quant / BipolarQuant on constants fold into integer mantissas;
- a Gemm becomes a ``Dense`` (a bias off the integer grid waits for the next quantizer);
- ``[Relu] -> Quant`` with a power-of-two scale and an ap_fixed rounding mode is an ``Activation``
  (a cast); any other float chain ending in a quantizer (BatchNorm, scale ops, float scales,
  bipolar or CEIL/UP quantizers) becomes an exact ``Threshold`` table;
- the Add of two activations is an ``Add`` (both on one scale, as Brevitas requires);
- float elementwise ops after the last quantizer stay on the host (``Network.postprocess``).

Anything else is rejected with the node's name.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.network import (
    MAX_UNITS,
    MAX_WEIGHTS,
    Activation,
    Add,
    Concat,
    Conv,
    Dense,
    FloatOp,
    InputQuant,
    Layer,
    Network,
    Pool,
    Reshape,
    Softmax,
    Tensor,
    Threshold,
    accumulator_type,
    concat_type,
    sum_type,
    window_shape,
)
from fpga_mpq.ir.passes import LOWERING, run_passes
from fpga_mpq.ir.passes.conv1d import Conv1dAs2d, has_1d_windows
from fpga_mpq.ir.quant_nodes import QUANT_OPS, FoldedConst, attr, fold_constant, quant_params
from fpga_mpq.ir.real_ops import channel_op
from fpga_mpq.ir.tabulate import can_tabulate, exact_thresholds, tabulate
from fpga_mpq.ir.types import FixedType, type_for_range

ELEMENTWISE = ("Add", "Sub", "Mul", "Div")
BIAS_GRID_TOLERANCE = Fraction(1, 1 << 16)  # float32 rounding of input scale x weight scale is 2**-24
MONOTONE_OPS = ("Sigmoid", "Tanh", "HardSigmoid")  # activations a threshold table holds exactly
REQUANT_OPS = (*ELEMENTWISE, "Relu", "Clip", "BatchNormalization", *MONOTONE_OPS)
POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
SPATIAL_OPS = ("Conv", *POOL_OPS)
SHAPE_OPS = ("Flatten", "Reshape", "Identity")
CHANNELS_LAST = "qonnx.custom_op.channels_last"
USER_NAME = "fpga_mpq.user_name"  # a node's name in the user's file (qonnx's cleanup renames them all)
USER_MODULE = "fpga_mpq.user_module"  # the PyTorch module a node came from, where the export recorded it
TORCH_SCOPES, TORCH_CLASSES = "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy"
LAYER_CLASSES = ("brevitas.nn.", "torch.nn.modules.")  # a user's layer; containers and quantizers are not
QONNX_NAME = re.compile(r"\bnode ([A-Za-z]+_\d+)\b")  # the names qonnx's GiveUniqueNodeNames gives


def read_onnx(path: Path) -> onnx.ModelProto:
    """The model file with its external data, checked: one clear error for a bad file, and no byte
    read from outside the model's folder."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"model file {path} is a directory, not an ONNX file")
    if not path.is_file():
        raise BadInput(f"model file {path} does not exist")
    if path.stat().st_size == 0:
        raise BadInput(f"model file {path} is empty")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError, OSError ...
        raise BadInput(f"model file {path} is not a valid ONNX model: {_first_line(e)}") from None
    if not proto.graph.node:
        raise BadInput(f"model file {path} is not a valid ONNX model: the graph has no nodes")
    check_external_data(proto, path)
    try:
        onnx.load_external_data_for_model(proto, str(path.parent))
    except Exception as e:  # a short external data file
        raise BadInput(f"model file {path}: its external data cannot be read: {_first_line(e)}") from None
    return proto


def load_qonnx(path: Path):
    """Load, check the quantizers, clean with qonnx and lower; one clear error for a bad file."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    proto = read_onnx(path)
    _check_file_structure(proto.graph, path)
    _check_ops(proto.graph, path)
    _check_input_shape(proto.graph, path)
    try:
        raw = ModelWrapper(proto)
    except Exception as e:  # qonnx asserts on what it cannot read
        raise BadInput(f"model file {path}: qonnx cannot read the graph: {_first_line(e)}") from None
    _check_before_cleanup(raw)
    for node in raw.graph.node:  # qonnx renames every node: the user's name (and module) travels with it
        node.metadata_props.add(key=USER_NAME, value=node.name)
        module = torch_module(node)
        if module:
            node.metadata_props.add(key=USER_MODULE, value=module)
    try:
        model = cleanup_model(raw)
        if has_1d_windows(model):
            model = cleanup_model(run_passes(model, (Conv1dAs2d(),)))
    except BadInput:
        raise
    except Exception as e:
        raise BadInput(f"model file {path}: qonnx cannot clean the graph: {str(e).splitlines()[0]}") from None
    if any(node.op_type in SPATIAL_OPS for node in model.graph.node):
        try:
            model = cleanup_model(model.transform(ConvertToChannelsLastAndClean()))
        except Exception as e:
            raise BadInput(f"model file {path}: qonnx cannot convert it to channels last: {_first_line(e)}") from None
    return run_passes(model, LOWERING)


def _tensors(graph: onnx.GraphProto):
    """Every tensor a graph stores: initializers and the constants of node attributes, subgraphs too."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            for g in (*([a.g] if a.HasField("g") else []), *a.graphs):
                yield from _tensors(g)


def check_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """External data must be a plain file inside the model's folder (no absolute path, no ``..``, no
    symbolic link on the way), as onnx's checker requires: a model never makes the tool read, copy or
    print a file elsewhere."""
    folder = path.parent.resolve()
    for tensor in _tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        where = f"model file {path}: tensor {tensor.name[:80]} has its data in {location[:120]!r}"
        rel = Path(location)
        if not location or rel.is_absolute() or ".." in rel.parts:
            raise BadInput(f"{where}: external data must be a path inside the model's folder")
        for step in [folder / Path(*rel.parts[: i + 1]) for i in range(len(rel.parts))]:
            if step.is_symlink():
                raise BadInput(f"{where}: {step.relative_to(folder)} is a symbolic link; copy the data in place")
        if not (folder / rel).is_file():
            raise BadInput(f"{where}, which is not a file beside the model")


def torch_module(node: onnx.NodeProto) -> str | None:
    """The deepest PyTorch layer (``layers.1.conv``) torch.onnx recorded for ``node``, or None: the
    name users know their network by."""
    props = {p.key: p.value for p in node.metadata_props}
    try:
        scopes = ast.literal_eval(props.get(TORCH_SCOPES, "[]"))
        classes = ast.literal_eval(props.get(TORCH_CLASSES, "[]"))
    except (ValueError, SyntaxError):
        return None
    layers = [
        s for s, c in zip(scopes, classes, strict=False)
        if s and isinstance(c, str) and c.startswith(LAYER_CLASSES) and ".container." not in c
    ]  # fmt: skip
    return layers[-1] if layers else None


def _check_ops(graph: onnx.GraphProto, path: Path) -> None:
    """An op nothing here computes is named as the user's graph has it, before qonnx's cleanup and
    channels-last conversion wrap it in nodes of their own. A node on constants only (or on a shape)
    is left to qonnx's constant folding."""
    static = {init.name for init in graph.initializer} | {""}
    for i, node in enumerate(graph.node):  # ONNX lists nodes in topological order
        if node.op_type == "Shape" or all(x in static for x in node.input):
            static.update(node.output)
        elif node.op_type not in HANDLERS and not any(node.op_type in p.lowers for p in LOWERING):
            name = node.name or f"{node.op_type}_{i}"
            raise BadInput(
                f"model file {path}: node {name[:80]}: op {node.op_type[:40]} is not supported "
                f"(supported: {', '.join(sorted(HANDLERS))})"
            )


def _check_input_shape(graph: onnx.GraphProto, path: Path) -> None:
    """Every dimension of the graph input fixed: hardware has one shape (a dynamic batch is common in
    an export with ``dynamic_axes``; say so in the user's terms, not as qonnx's zeros)."""
    inits = {i.name for i in graph.initializer}
    for inp in (i for i in graph.input if i.name not in inits):
        if not inp.type.HasField("tensor_type") or not inp.type.tensor_type.HasField("shape"):
            raise BadInput(f"model file {path}: input {inp.name[:80]} has no shape; export it with a fixed shape")
        dims = inp.type.tensor_type.shape.dim
        text = ", ".join(str(d.dim_value) if d.dim_value else (d.dim_param or "?") for d in dims)
        for k, d in enumerate(dims):
            if not d.dim_value:
                what = "the batch dimension" if k == 0 else f"dimension {k}"
                raise BadInput(
                    f"model file {path}: input {inp.name[:80]} has shape [{text[:120]}]: {what} is not "
                    "fixed; export it with a fixed shape (a batch of 1)"
                )


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


@dataclass(frozen=True)
class Value:
    """What the builder knows of one ONNX tensor: the IR tensor it derives from, and what lies
    between them that no layer has taken yet.

    ``pending`` are float nodes applied after ``tensor`` (each with the name of the input it reads):
    they become part of the next layer (a threshold before a quantizer, a ReLU before a Gemm) or
    stay on the host. With float (non power-of-two) scales the real value is the fixed-point value
    x ``extra[c]`` + ``real_bias[c]``: a bias off the integer grid waits for the next quantizer.
    """

    tensor: str | None  # None: still on the host, before the input quantizer
    pending: tuple[tuple[onnx.NodeProto, str], ...] = ()
    extra: np.ndarray | None = None  # Fraction per channel
    real_bias: np.ndarray | None = None  # Fraction per channel
    output_scale: np.float32 | None = None  # the float scale of the quantizer that wrote ``tensor``

    @property
    def source(self) -> str | None:
        """The ONNX name the pending chain starts from."""
        return self.pending[0][1] if self.pending else None


class _Builder:
    """Visits the lowered graph in topological order; one handler per op type."""

    def __init__(self, model, input_type: FixedType | None) -> None:
        self.model = model
        inits = {init.name for init in model.graph.initializer}
        self.consts: dict[str, FoldedConst | None] = {name: None for name in inits}
        inputs = [i for i in model.graph.input if i.name not in inits]
        if len(inputs) != 1 or len(model.graph.output) != 1:
            raise BadInput(f"model must have one input and one output, has {len(inputs)} and {len(model.graph.output)}")
        self.input_name = inputs[0].name
        shape = model.get_tensor_shape(self.input_name)
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape):
            raise BadInput(f"input {self.input_name}: needs a static shape, got {shape}")
        self.model_shape = tuple(int(d) for d in shape[1:]) if len(shape) > 1 else (int(shape[0]),)
        self.spatial = any(node.op_type in SPATIAL_OPS for node in model.graph.node)
        self.perm: tuple[int, ...] = ()  # the host's transpose of the input to channels last
        self.declared_input = input_type
        self.input: InputQuant | None = None
        self.preprocess: tuple[FloatOp, ...] = ()
        self.layers: list[Layer] = []
        self.values: dict[str, Value] = {self.input_name: Value(None)}

    # -- the IR so far -------------------------------------------------------
    def tensor(self, name: str) -> Tensor:
        if self.input is not None and name == self.input.output:
            return Tensor(name, self.input.shape, self.input.out)
        layer = next(la for la in reversed(self.layers) if la.output == name)
        return Tensor(name, layer.shape, layer.out)

    def emit(self, layer: Layer) -> str:
        self.layers.append(layer)
        return layer.output

    def value(self, node, name: str) -> Value:
        if name not in self.values:
            if name in self.consts:
                raise BadInput(f"node {node.name} ({node.op_type}): constant {name} where an activation is expected")
            raise BadInput(f"node {node.name} ({node.op_type}): input {name} is not computed by a supported node")
        return self.values[name]

    def const(self, node, name: str) -> FoldedConst:
        if name not in self.consts:
            raise BadInput(f"node {node.name} ({node.op_type}): input {name} is neither an activation nor a constant")
        folded = self.consts[name]
        if folded is None:
            raise BadInput(f"node {node.name}: constant {name} is not quantized (no Quant node on it)")
        return folded

    def activation_inputs(self, node) -> list[str]:
        return [x for x in node.input if x and x not in self.consts]

    # -- turning pending ops into layers -------------------------------------
    def host_ops(self, v: Value, where: str) -> tuple[FloatOp, ...]:
        """Pending elementwise float ops with constants: the host runs them as ONNX does."""
        ops = []
        for node, live in v.pending:
            if node.op_type not in ELEMENTWISE:
                raise BadInput(f"node {node.name}: {node.op_type} {where} is not supported")
            const_first = node.input[0] != live
            value = self.model.get_initializer(node.input[0 if const_first else 1])
            ops.append(FloatOp(node.op_type, np.asarray(value, dtype=np.float32), const_first))
        return tuple(ops)

    def fixed(self, node, name: str) -> Value:
        """The value of ``name`` as an IR tensor: starts the hardware at a declared input type, and
        resolves a bare pending ReLU into a layer (once, whoever reads it first)."""
        v = self.value(node, name)
        if v.tensor is None:
            if self.input is not None:
                raise BadInput(f"node {node.name}: reads the float input again after its quantizer")
            if self.declared_input is None:
                raise BadInput(
                    f"node {node.name}: the model has no input quantizer; declare the hardware input type "
                    "(--input-type, e.g. 'ap_fixed<16,6>')"
                )
            self.preprocess = self.host_ops(v, "before the input")
            self.input = self.input_quant_layer(self.input_name, self.input_name, self.declared_input, False)
            v = Value(self.input_name)
        elif v.pending:
            ops = [n.op_type for n, _ in v.pending]
            if ops != ["Relu"]:
                raise BadInput(
                    f"node {v.pending[-1][0].name}: float ops {' -> '.join(ops)} with no quantizer after them "
                    "are not supported"
                )
            relu = v.pending[0][0]
            t = self.tensor(v.tensor)
            out = type_for_range(0, max(t.type.max_int, 0), t.type.frac)
            tensor = self.emit(Activation(relu.name, t.name, relu.output[0], t.shape, t.type, True, out))
            v = replace(v, tensor=tensor, pending=())
        self.values[name] = v
        return v

    def input_quant_layer(self, name: str, out: str, t: FixedType, from_model: bool, q=None) -> InputQuant:
        """The hardware input: a flat vector for a dense network, (H, W, C) pixels for a spatial one."""
        shape = (math.prod(self.model_shape),)
        if self.spatial:
            shape = tuple(self.model_shape[p] for p in self.perm) if self.perm else self.model_shape
            if len(shape) != 3:
                raise BadInput(f"input {self.input_name}: shape {self.model_shape} is not one image (C, H, W)")
        return InputQuant(name, out, shape, t, from_model, q, self.model_shape, self.perm)

    # -- handlers ------------------------------------------------------------
    def on_float_op(self, node) -> None:
        """An elementwise float op on one activation and constants: pending until a layer takes it."""
        acts = self.activation_inputs(node)
        if len(acts) != 1:
            raise BadInput(f"node {node.name}: {node.op_type} of {len(acts)} activations is not supported")
        for x in node.input:
            if x and x != acts[0] and self.model.get_initializer(x) is None:
                raise BadInput(f"node {node.name}: input {x} of {node.op_type} must be a constant")
        v = self.value(node, acts[0])
        self.values[node.output[0]] = replace(v, pending=(*v.pending, (node, acts[0])))

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
        v = self.value(node, node.input[0])
        if v.tensor is None:
            self.values[node.output[0]] = self.input_quant(node, v, q)
        elif v.extra is not None or v.real_bias is not None or not q.pow2 or self.too_wide(v, q):
            self.values[node.output[0]] = self.float_scale_quant(node, v, q)
        else:
            self.values[node.output[0]] = Value(self.requantize(node, v, q.fixed_type(), q.frac))

    def too_wide(self, v: Value, q) -> bool:
        """A float chain on an input too wide to tabulate: exact rational thresholds instead."""
        plain_cast = q.fixed_type() is not None and [n.op_type for n, _ in v.pending] in ([], ["Relu"])
        return not plain_cast and not can_tabulate(self.tensor(v.tensor).type)

    def input_quant(self, node, v: Value, q) -> Value:
        if self.input is not None:
            raise BadInput(f"node {node.name}: a second quantizer on the float input is not supported")
        self.preprocess = self.host_ops(v, "before the input quantizer")
        out = node.output[0]
        cast = q.fixed_type()
        if cast is not None:
            self.input = self.input_quant_layer(node.name, out, cast, True)
            return Value(out)
        # bipolar, CEIL/UP or unsigned narrow: the host quantizes, the hardware takes the grid values
        grid = type_for_range(*q.int_range, q.frac)
        self.input = self.input_quant_layer(node.name, out, grid, True, q)
        if q.pow2:
            return Value(out)
        scale = Fraction(float(q.scale.reshape(-1)[0]))
        return Value(out, extra=np.array([scale] * self.input.shape[-1], dtype=object))

    def requantize(self, node, v: Value, cast: FixedType | None, out_frac: int | None) -> str:
        """Power-of-two scales: ``[Relu] -> Quant`` is a cast; any other float chain is tabulated."""
        t = self.tensor(v.tensor)
        ops = [n.op_type for n, _ in v.pending]
        if cast is not None and ops in ([], ["Relu"]):
            name = v.pending[0][0].name if ops else node.name
            return self.emit(Activation(name, t.name, node.output[0], t.shape, t.type, bool(ops), cast))
        for n, _ in v.pending:
            if n.op_type not in REQUANT_OPS:
                raise BadInput(f"node {n.name}: op {n.op_type} is not supported before a quantizer")
        nodes = [n for n, _ in v.pending] + [node]
        source = v.source or node.input[0]
        image = len(t.shape) == 3
        thresholds, values, out = tabulate(self.model, nodes, source, t.type, t.shape[-1], out_frac, image)
        return self.emit(Threshold(nodes[-1].name, t.name, node.output[0], t.shape, t.type, thresholds, values, out))

    def float_scale_quant(self, node, v: Value, q) -> Value:
        """[bias] -> [BatchNorm / Relu / Clip / scale ops] -> Quant where a float scale is involved:
        exact rational thresholds."""
        t = self.tensor(v.tensor)
        n = t.shape[-1]
        ops = [channel_op(self.model, pending, live, n) for pending, live in v.pending]
        extra = v.extra if v.extra is not None else np.array([Fraction(1)] * n, dtype=object)
        bias = v.real_bias if v.real_bias is not None else np.array([Fraction(0)] * n, dtype=object)
        name = v.pending[0][0].name if ops else node.name
        thresholds, values, out = exact_thresholds(name, t.type, extra, bias, ops, q)
        tensor = self.emit(Threshold(name, t.name, node.output[0], t.shape, t.type, thresholds, values, out))
        if q.pow2:
            return Value(tensor)
        scale = q.scale.reshape(-1)[0]
        return Value(tensor, extra=np.array([Fraction(float(scale))] * n, dtype=object), output_scale=scale)

    def on_trunc(self, node) -> None:
        """QONNX Trunc (dropping LSBs, e.g. after an average pool): tabulated like a quantizer."""
        v = self.value(node, node.input[0])
        if v.tensor is None:
            v = self.fixed(node, node.input[0])
        if v.extra is not None or v.real_bias is not None:
            raise BadInput(f"node {node.name}: Trunc on a float-scaled tensor is not supported")
        self.values[node.output[0]] = Value(self.requantize(node, v, None, None))

    def on_gemm(self, node) -> None:
        """A dense layer (the passes made every one a Gemm reading its weight as (n_in, n_out))."""
        v, t, weight, bias = self.weighted_inputs(node)
        w = weight.mantissa
        if w.ndim != 2 or w.shape[0] != t.shape[-1] or len(t.shape) != 1:
            raise BadInput(f"node {node.name}: weight shape {w.shape} does not fit input shape {t.shape}")
        if w.shape[1] > MAX_UNITS or w.size > MAX_WEIGHTS:
            raise BadInput(
                f"node {node.name}: {w.shape[0]} x {w.shape[1]} weights; a layer may have at most {MAX_UNITS:,} "
                f"outputs and {MAX_WEIGHTS:,} weights"
            )
        b, b_type, acc, value = self.accumulate(node, v, t, w, weight, bias)
        dense = Dense(node.name, t.name, node.output[0], (w.shape[1],), t.type, w, weight.type, b, b_type, acc)
        self.values[node.output[0]] = replace(value, tensor=self.emit(dense))

    def on_conv(self, node) -> None:
        """A channels-last convolution (qonnx's ConvertToChannelsLastAndClean wrote it)."""
        if node.domain != CHANNELS_LAST:
            raise BadInput(f"node {node.name}: Conv was not converted to channels last")
        v, t, weight, bias = self.weighted_inputs(node)
        if attr(node, "dilations", [1, 1]) != [1, 1] or attr(node, "auto_pad", "NOTSET") != "NOTSET":
            raise BadInput(f"node {node.name}: Conv with dilation or auto_pad is not supported")
        if weight.mantissa.ndim != 4 or len(t.shape) != 3:
            raise BadInput(f"node {node.name}: a 2-D convolution needs (H, W, C) input, got {t.shape}")
        w = np.ascontiguousarray(weight.mantissa.transpose(1, 2, 3, 0))  # (F, KH, KW, C/g) -> (KH, KW, C/g, F)
        b, b_type, acc, value = self.accumulate(node, v, t, w.reshape(-1, w.shape[3]), weight, bias)
        strides, pads = self.window(node, w.shape[:2])
        conv = Conv(
            node.name, t.name, node.output[0], (0, 0, 0), t.type, w, weight.type, b, b_type, acc, strides, pads,
            int(attr(node, "group", 1)),
        )  # fmt: skip
        conv = replace(conv, shape=window_shape(conv, t.shape))
        self.values[node.output[0]] = replace(value, tensor=self.emit(conv))

    def window(self, node, kernel: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        if list(attr(node, "kernel_shape", kernel)) != list(kernel):
            raise BadInput(f"node {node.name}: kernel_shape {attr(node, 'kernel_shape', None)} is not {kernel}")
        strides = tuple(attr(node, "strides", [1, 1]))
        pads = tuple(attr(node, "pads", [0, 0, 0, 0]))
        if len(strides) != 2 or len(pads) != 4 or min(strides) < 1 or min(pads) < 0:
            raise BadInput(f"node {node.name}: strides {strides} and pads {pads} are not those of a 2-D window")
        return strides, pads

    def weighted_inputs(self, node) -> tuple[Value, Tensor, FoldedConst, FoldedConst | np.ndarray | None]:
        """The input, its tensor, the weight and the bias: quantized, or a float bias (Brevitas' default
        ``bias_quant=None``) as its exact float32 values."""
        if node.input[0] in self.consts:
            raise BadInput(f"node {node.name}: {node.op_type} with a constant first operand is not supported")
        weight = self.const(node, node.input[1])
        bias = None
        if len(node.input) > 2 and node.input[2]:
            name = node.input[2]
            unquantized = name in self.consts and self.consts[name] is None
            bias = self.float_bias(node, name) if unquantized else self.const(node, name)
        v = self.fixed(node, node.input[0])
        if v.real_bias is not None:
            raise BadInput(f"node {node.name}: a float-scaled bias must be followed by a quantizer")
        return v, self.tensor(v.tensor), weight, bias

    def accumulate(
        self, node, v: Value, t: Tensor, cols: np.ndarray, weight: FoldedConst, bias: FoldedConst | np.ndarray | None
    ):
        """Bias, accumulator type and output scale of ``x @ cols + bias`` (cols: (fan-in, outputs)). A
        bias off the integer grid (a float bias, or one on its own float scale) waits as ``real_bias``
        for the next quantizer, or for the host after an unquantized head."""
        n_out = cols.shape[1]
        extra = None
        if v.extra is not None or weight.scale is not None:
            extra = self.product_scale(node, v, weight, n_out)
        real_bias = None
        int_bias = FoldedConst(np.zeros(n_out, dtype=np.int64), FixedType(True, 1, 1))
        if isinstance(bias, np.ndarray):
            real_bias = self.broadcast_bias(node, bias, n_out)
        elif bias is not None and (extra is not None or bias.scale is not None):
            real_bias = self.real_values(node, bias, n_out)  # off the integer grid: the quantizer takes it
        elif bias is not None:
            int_bias = bias
        try:
            b = np.broadcast_to(int_bias.mantissa.reshape(-1), (n_out,)).astype(np.int64)
        except ValueError:
            shape = int_bias.mantissa.shape
            raise BadInput(f"node {node.name}: bias shape {shape} does not fit {n_out} outputs") from None
        try:
            acc = accumulator_type(t.type, cols, weight.type.frac, b, int_bias.type.frac)
        except BadInput as e:
            raise BadInput(f"node {node.name}: accumulator too wide ({e})") from None
        return b, int_bias.type, acc, Value(None, extra=extra, real_bias=real_bias)

    def on_pool(self, node) -> None:
        """MaxPool passes scales through; an average pool is an exact sum whose division by the
        window size joins the tensor's scale (the next quantizer applies it exactly)."""
        if node.domain != CHANNELS_LAST:
            raise BadInput(f"node {node.name}: {node.op_type} was not converted to channels last")
        v = self.fixed(node, node.input[0])
        t = self.tensor(v.tensor)
        if len(t.shape) != 3:
            raise BadInput(f"node {node.name}: {node.op_type} needs (H, W, C) input, got {t.shape}")
        if node.op_type.startswith("Global"):
            kernel, strides, pads = t.shape[:2], (1, 1), (0, 0, 0, 0)
        else:
            kernel = tuple(attr(node, "kernel_shape", []))
            if attr(node, "ceil_mode", 0) or attr(node, "dilations", [1, 1]) != [1, 1] or len(kernel) != 2:
                raise BadInput(f"node {node.name}: {node.op_type} with ceil_mode or dilation is not supported")
            strides, pads = self.window(node, kernel)
        if node.op_type in ("MaxPool", "GlobalMaxPool"):
            op, out, value = "max", t.type, v
        else:
            if any(pads) and attr(node, "count_include_pad", 0) == 0:
                raise BadInput(f"node {node.name}: a padded AveragePool must count the padding (count_include_pad=1)")
            k = kernel[0] * kernel[1]
            out = type_for_range(t.type.min_int * k, t.type.max_int * k, t.type.frac)
            extra = v.extra if v.extra is not None else np.array([Fraction(1)] * t.shape[-1], dtype=object)
            value = replace(v, extra=extra / k)  # real_bias passes: the mean of x + b is mean(x) + b
            op = "sum"
        pool = Pool(node.name, t.name, node.output[0], (0, 0, 0), t.type, out, op, kernel, strides, pads)
        pool = replace(pool, shape=window_shape(pool, t.shape))
        self.values[node.output[0]] = replace(value, tensor=self.emit(pool))

    def on_shape(self, node) -> None:
        """Flatten / Reshape / Identity: a flat tensor passes through; (H, W, C) pixels become one
        vector in channels-last order (qonnx folded the NCHW order into the next weights)."""
        v = self.value(node, node.input[0])
        target = self.model.get_tensor_shape(node.output[0])
        if v.tensor is None and not self.spatial:  # the host hands the hardware a flat vector anyway
            self.values[node.output[0]] = v
            return
        if v.tensor is None or v.pending:
            v = self.fixed(node, node.input[0])
        t = self.tensor(v.tensor)
        if node.op_type == "Identity" or len(t.shape) == 1:
            if target is not None and math.prod(target[1:]) != math.prod(t.shape):
                raise BadInput(f"node {node.name}: reshapes {t.shape} to {target}")
            self.values[node.output[0]] = v
            return
        if target is None or len(target) != 2 or target[1] != math.prod(t.shape):
            raise BadInput(f"node {node.name}: only a flatten of (H, W, C) to one vector is supported, not {target}")
        reshape = Reshape(node.name, t.name, node.output[0], (target[1],), t.type)
        self.values[node.output[0]] = replace(v, tensor=self.emit(reshape))

    def on_transpose(self, node) -> None:
        """The host's transpose of the model input to channels last (qonnx puts it first)."""
        v = self.value(node, node.input[0])
        perm = tuple(attr(node, "perm", []))
        if node.input[0] != self.input_name or v.pending or self.perm or len(perm) < 2 or perm[0] != 0:
            raise BadInput(f"node {node.name}: Transpose is only supported on the model input")
        self.perm = tuple(p - 1 for p in perm[1:])
        self.values[node.output[0]] = v

    def float_bias(self, node, name: str) -> np.ndarray:
        """An unquantized bias: each float32 value as the exact rational it is."""
        values = np.asarray(self.model.get_initializer(name), dtype=np.float32)
        if not np.all(np.isfinite(values)):
            raise BadInput(f"node {node.name}: the float bias {name} holds a NaN or an infinity")
        return np.array([Fraction(float(b)) for b in values.ravel()], dtype=object).reshape(values.shape)

    @staticmethod
    def real_values(node, bias: FoldedConst, n: int) -> np.ndarray:
        real = bias.mantissa.astype(object) * Fraction(2) ** -bias.type.frac
        scale = np.ones(1) if bias.scale is None else bias.scale
        real = real * np.array([Fraction(float(s)) for s in scale.ravel()], dtype=object)
        return _Builder.broadcast_bias(node, real, n)

    @staticmethod
    def broadcast_bias(node, real: np.ndarray, n: int) -> np.ndarray:
        try:
            return np.broadcast_to(real.reshape(-1) if real.size == n else real, (n,)).copy()
        except ValueError:
            raise BadInput(f"node {node.name}: bias shape {real.shape} does not fit {n} outputs") from None

    @staticmethod
    def product_scale(node, v: Value, weight: FoldedConst, n_out: int) -> np.ndarray:
        """Real scale of each output channel: input scale x that column's weight scale."""
        extra_in = set(v.extra) if v.extra is not None else {Fraction(1)}
        if len(extra_in) != 1:
            raise BadInput(
                f"node {node.name}: its input has a different float scale per channel (a Concat of branches with "
                "their own float-scale quantizers): not exact in one integer sum; quantize the branches with one "
                "shared quantizer or with power-of-two scales"
            )
        (e_in,) = extra_in
        w_scale = (
            np.ones(n_out) if weight.scale is None else np.broadcast_to(weight.scale.reshape(1, -1), (1, n_out))[0]
        )
        return np.array([e_in * Fraction(float(s)) for s in w_scale], dtype=object)

    def on_add(self, node) -> None:
        """A constant Add is a float op; the Add of two activations is a residual sum (exact when both
        share one scale, as Brevitas requires of a residual's quantizers)."""
        acts = self.activation_inputs(node)
        if len(acts) != 2:
            self.on_float_op(node)
            return
        a, b = (self.fixed(node, x) for x in acts)
        if (a.extra is None) != (b.extra is None) or (a.extra is not None and list(a.extra) != list(b.extra)):
            raise BadInput(f"node {node.name}: adds tensors with different scales (quantize both with one quantizer)")
        ta, tb = self.tensor(a.tensor), self.tensor(b.tensor)
        if ta.shape != tb.shape:
            raise BadInput(f"node {node.name}: adds shapes {ta.shape} and {tb.shape} (broadcasting is not supported)")
        real_bias = None
        if a.real_bias is not None or b.real_bias is not None:
            zero = np.array([Fraction(0)] * ta.shape[-1], dtype=object)
            real_bias = (zero if a.real_bias is None else a.real_bias) + (zero if b.real_bias is None else b.real_bias)
        out = sum_type(ta.type, tb.type)
        tensor = self.emit(Add(node.name, (ta.name, tb.name), node.output[0], ta.shape, (ta.type, tb.type), out))
        self.values[node.output[0]] = Value(tensor, extra=a.extra, real_bias=real_bias)

    def on_concat(self, node) -> None:
        """Two activations side by side along the channels; a float scale or bias per channel travels
        with its channels to the next quantizer."""
        acts = self.activation_inputs(node)
        if len(acts) != 2 or len(node.input) != 2:
            raise BadInput(f"node {node.name}: Concat of {len(node.input)} inputs; two activations are supported")
        rank = len(self.model.get_tensor_shape(node.output[0]) or [0, 0])
        axis = int(attr(node, "axis", 1))
        if axis % rank != (rank - 1 if node.domain == CHANNELS_LAST else 1):  # the passes made images channels last
            raise BadInput(f"node {node.name}: Concat along axis {axis}; only the channels (axis 1) are supported")
        a, b = (self.fixed(node, x) for x in acts)
        ta, tb = self.tensor(a.tensor), self.tensor(b.tensor)
        if ta.shape[:-1] != tb.shape[:-1]:
            raise BadInput(f"node {node.name}: concatenates shapes {ta.shape} and {tb.shape}")

        def per_channel(values, n: int, fill: Fraction) -> np.ndarray:
            return np.array([fill] * n, dtype=object) if values is None else values

        extra = real_bias = None
        if a.extra is not None or b.extra is not None:
            one = Fraction(1)
            extra = np.concatenate([per_channel(a.extra, ta.shape[-1], one), per_channel(b.extra, tb.shape[-1], one)])
        if a.real_bias is not None or b.real_bias is not None:
            zero = Fraction(0)
            real_bias = np.concatenate(
                [per_channel(a.real_bias, ta.shape[-1], zero), per_channel(b.real_bias, tb.shape[-1], zero)]
            )
        shape = (*ta.shape[:-1], ta.shape[-1] + tb.shape[-1])
        out = concat_type(ta.type, tb.type)
        tensor = self.emit(Concat(node.name, (ta.name, tb.name), node.output[0], shape, (ta.type, tb.type), out))
        self.values[node.output[0]] = Value(tensor, extra=extra, real_bias=real_bias)

    def on_softmax(self, node) -> None:
        if node.output[0] != self.model.graph.output[0].name:
            raise BadInput(f"node {node.name}: Softmax is only supported as the last op")
        v = self.fixed(node, node.input[0])
        if v.extra is not None or v.real_bias is not None:
            raise BadInput(f"node {node.name}: Softmax of a float-scaled tensor is not supported (quantize it first)")
        t = self.tensor(v.tensor)
        self.emit(Softmax(node.name, t.name, node.output[0], t.shape, t.type))
        self.values[node.output[0]] = Value(node.output[0])

    def visit(self, node) -> None:
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise BadInput(f"node {node.name}: op {node.op_type} is not supported")
        handler(self, node)

    # -- the end -------------------------------------------------------------
    def finish(self) -> Network:
        graph_out = self.model.graph.output[0].name
        if graph_out not in self.values:
            raise BadInput(f"graph output {graph_out} is not computed by a supported node")
        v = self.values[graph_out]
        if self.input is None or not any(isinstance(la, Dense) for la in self.layers):
            raise BadInput("model has no fixed-point layers (no MatMul or Gemm after the input)")
        if self.layers[-1].output != v.tensor:
            raise BadInput(f"graph output {graph_out} is not computed from the last layer {self.layers[-1].name}")
        head_scale, head_bias = None, None
        if (v.extra is not None and v.output_scale is None) or v.real_bias is not None:
            head_scale, head_bias = self.integer_head(v)
        postprocess = self.host_ops(v, "after the last quantizer")
        if v.output_scale is not None:  # the output quantizer's float scale, applied as qonnx does
            if postprocess:
                raise BadInput("float ops after a float-scale output quantizer are not supported")
            postprocess = (FloatOp("Mul", np.asarray(v.output_scale, dtype=np.float32), False),)
        if head_scale is not None:  # the real value of the fixed-point output: its value x extra + head_bias
            postprocess = ()
            if v.extra is not None:
                postprocess = (FloatOp("Mul", np.array([float(e) for e in v.extra], dtype=np.float32), False),)
            if head_bias is not None:
                postprocess += (FloatOp("Add", np.array(head_bias, dtype=np.float32), False),)
        if postprocess and isinstance(self.layers[-1], Softmax):
            raise BadInput("float ops after a Softmax are not supported")
        modules = {n.name: p.value for n in self.model.graph.node for p in n.metadata_props if p.key == USER_MODULE}
        named = tuple((la.name, modules[la.name]) for la in self.layers if la.name in modules)
        return Network(self.input, tuple(self.layers), self.preprocess, postprocess, head_scale, head_bias, named)

    def integer_head(self, v: Value) -> tuple[tuple[Fraction, ...], tuple[float, ...] | None]:
        """An unquantized final layer (the usual Brevitas classifier head): the hardware outputs the
        exact integer accumulator; its rational scale per channel, and a bias off its grid, are the host's.

        A bias quantized at input scale x weight scale (``Int32Bias``) lies on the accumulator's grid up
        to the float32 rounding of that product, and joins the integer sum. Any other (a float bias,
        Brevitas' default, or one on its own scale) is added by the host in float32 after the scale, as
        qonnx adds it: ``head_bias``.
        """
        dense = self.layers[-1]
        if v.pending or not isinstance(dense, Dense):
            through = " -> ".join(n.op_type for n, _ in v.pending) or f"{type(dense).__name__} {dense.name}"
            raise BadInput(f"a float-scaled tensor reaches the output through {through} without a quantizer: not exact")
        extra = v.extra if v.extra is not None else [Fraction(1)] * dense.n_out
        units = [e * Fraction(2) ** -dense.out.frac for e in extra]
        bias, head_bias = np.zeros(dense.n_out, dtype=np.int64), None
        if v.real_bias is not None:
            ratio = [b / u for b, u in zip(v.real_bias, units, strict=True)]
            rounded = np.array([round(r) for r in ratio], dtype=np.int64)
            tolerance = [BIAS_GRID_TOLERANCE * max(1, abs(int(b))) for b in rounded]
            if all(abs(r - int(b)) <= t for r, b, t in zip(ratio, rounded, tolerance, strict=True)):
                bias = rounded
            else:
                head_bias = tuple(float(np.float32(float(b))) for b in v.real_bias)
        bias_type = type_for_range(int(min(bias.min(), 0)), int(max(bias.max(), 0)), dense.out.frac)
        acc = accumulator_type(dense.in_type, dense.weight, dense.weight_type.frac, bias, bias_type.frac)
        self.layers[-1] = replace(dense, bias=bias, bias_type=bias_type, out=acc)
        return tuple(e * Fraction(2) ** -acc.frac for e in extra), head_bias


HANDLERS = {
    **dict.fromkeys(REQUANT_OPS, _Builder.on_float_op),
    "Quant": _Builder.on_quant,
    "BipolarQuant": _Builder.on_quant,
    "Trunc": _Builder.on_trunc,
    "Gemm": _Builder.on_gemm,
    "Conv": _Builder.on_conv,
    "Transpose": _Builder.on_transpose,
    **dict.fromkeys(POOL_OPS, _Builder.on_pool),
    **dict.fromkeys(SHAPE_OPS, _Builder.on_shape),
    "Add": _Builder.on_add,
    "Concat": _Builder.on_concat,
    "Softmax": _Builder.on_softmax,
}  # one handler per op type of the lowered graph


def _in_user_names(model, message: str) -> str:
    """``message`` with every node named as the user's file names it; a node qonnx made is said to be
    qonnx's, next to the user's node it came with."""
    names = {n.name: next((p.value for p in n.metadata_props if p.key == USER_NAME), None) for n in model.graph.node}

    def user(m: re.Match) -> str:
        name = m.group(1)
        if names.get(name):
            return f"node {names[name]}"
        node = next((n for n in model.graph.node if n.name == name), None)
        if node is None:
            return m.group(0)
        near = [c for o in node.output for c in model.find_consumers(o) or []]
        near += [p for i in node.input if (p := model.find_producer(i)) is not None]
        beside = next((f", beside node {names[n.name]} ({n.op_type})" for n in near if names.get(n.name)), "")
        return f"node {name} (made by qonnx's cleanup{beside})"

    return QONNX_NAME.sub(user, message)


def network_from_qonnx(path: Path, input_type: FixedType | None = None) -> Network:
    """Read a QONNX file into the exact IR; ``input_type`` is used only if the model has no input Quant.
    Errors name the nodes as the user's file does."""
    model = load_qonnx(path)
    try:
        b = _Builder(model, input_type)
        for node in model.graph.node:
            b.visit(node)
        return b.finish()
    except BadInput as e:
        raise BadInput(_in_user_names(model, str(e))) from None

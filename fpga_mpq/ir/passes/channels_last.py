"""What qonnx's ConvertToChannelsLastAndClean leaves in NCHW, made channels last.

qonnx converts Conv, MaxPool and BatchNormalization, and wraps every other op in a Transpose pair
(NHWC -> NCHW, op, NCHW -> NHWC). For a per-tensor elementwise op or a pool the pair is redundant:
the op reads the channels-last tensor directly.
"""

from __future__ import annotations

from onnx import helper

from fpga_mpq.ir.passes.base import consumers, rewire
from fpga_mpq.ir.quant_nodes import QUANT_OPS, attr

TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
CHANNELS_LAST = "qonnx.custom_op.channels_last"
ELEMENTWISE = (*QUANT_OPS, "Relu", "Trunc")  # per-tensor: indifferent to the layout
POOLS = ("AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool")


def _is_transpose(node, perm: list[int]) -> bool:
    return node is not None and node.op_type == "Transpose" and list(attr(node, "perm", [])) == perm


def _nhwc(nchw: list[int]) -> list[int]:
    return [nchw[0], nchw[2], nchw[3], nchw[1]]


def _wrapped(model, node):
    """(first, last) Transposes around ``node`` when it reads an NCHW view and is read back, else None."""
    first = model.find_producer(node.input[0])
    readers = consumers(model, node.output[0])
    if not _is_transpose(first, TO_NCHW):
        return None
    if len(consumers(model, first.output[0])) != 1 or len(readers) != 1:
        return None
    last = readers[0]
    if not _is_transpose(last, TO_NHWC):
        return None
    return first, last


class SkipTransposePair:
    """Every per-tensor elementwise op or pool between a Transpose pair reads and writes channels last."""

    lowers = ()

    def apply(self, model):
        changed = False
        for node in list(model.graph.node):
            if node.op_type not in (*ELEMENTWISE, *POOLS) or node.domain == CHANNELS_LAST:
                continue
            pair = _wrapped(model, node)
            if pair is None or (node.op_type in QUANT_OPS and _per_channel(model, node)):
                continue
            first, last = pair
            node.input[0] = first.input[0]
            if node.op_type in POOLS:
                node.domain = CHANNELS_LAST  # the builder reads its attributes in channels-last terms
            model.graph.node.remove(first)
            model.graph.node.remove(last)
            rewire(model, last.output[0], node.output[0])
            changed = True
        return model, changed


class PoolToOnePixel:
    """Every pool qonnx left on an NCHW view whose output is one pixel, read only by per-tensor ops that
    end in a flatten (``nn.AvgPool2d(8)`` on 8x8 maps, MLPerf Tiny's ResNet-8 global pool): one pixel
    flattens alike in both layouts, so the pool reads the channels-last tensor directly."""

    lowers = ()

    def apply(self, model):
        changed = False
        for node in list(model.graph.node):
            if node.op_type not in POOLS or node.domain == CHANNELS_LAST:
                continue
            first = model.find_producer(node.input[0])
            shape = model.get_tensor_shape(node.output[0])
            if not _is_transpose(first, TO_NCHW):
                continue
            if len(consumers(model, first.output[0])) != 1 or shape is None or len(shape) != 4 or shape[2:] != [1, 1]:
                continue
            chain = _per_tensor_chain(model, node.output[0])
            if chain is None:
                continue
            node.input[0] = first.input[0]
            node.domain = CHANNELS_LAST
            model.graph.node.remove(first)
            for tensor in chain:
                model.set_tensor_shape(tensor, [shape[0], 1, 1, shape[1]])
            changed = True
        return model, changed


class DropOnePixelTranspose:
    """Every Transpose to NCHW of a one-pixel tensor read only by per-tensor ops that end in a flatten
    (FINN's CNV: its last conv leaves 1x1 maps before the bipolar quantizer): a no-op on the values."""

    lowers = ()

    def apply(self, model):
        changed = False
        for node in list(model.graph.node):
            if not _is_transpose(node, TO_NCHW):
                continue
            shape = model.get_tensor_shape(node.input[0])
            if shape is None or len(shape) != 4 or shape[1:3] != [1, 1] or node.output[0] in _graph_outputs(model):
                continue
            chain = _per_tensor_chain(model, node.output[0])
            if chain is None:
                continue
            model.graph.node.remove(node)
            rewire(model, node.output[0], node.input[0])
            for tensor in chain[1:]:
                model.set_tensor_shape(tensor, list(shape))
            changed = True
        return model, changed


class ConcatChannelsLast:
    """Every Concat of NCHW views along the channels (qonnx wraps it in Transposes) concatenates the
    channels-last tensors along their last axis instead; one Transpose after it gives its readers the
    NCHW view they read (a flatten folds it into the dense weights, a Transpose back cancels it)."""

    lowers = ()

    def apply(self, model):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "Concat" or node.domain == CHANNELS_LAST or attr(node, "axis", 1) != 1:
                continue
            firsts = [model.find_producer(x) for x in node.input]
            if not all(_is_transpose(f, TO_NCHW) and len(consumers(model, f.output[0])) == 1 for f in firsts):
                continue
            nchw = model.get_tensor_shape(node.output[0])
            for i, f in enumerate(firsts):
                node.input[i] = f.input[0]
                model.graph.node.remove(f)
            out = node.output[0]
            node.output[0] = f"{out}_nhwc"
            node.domain = CHANNELS_LAST  # the builder reads the axis in channels-last terms
            for a in [a for a in node.attribute if a.name == "axis"]:
                node.attribute.remove(a)
            node.attribute.append(helper.make_attribute("axis", 3))
            model.set_tensor_shape(node.output[0], _nhwc(nchw))
            index = list(model.graph.node).index(node) + 1
            back = helper.make_node("Transpose", [node.output[0]], [out], perm=TO_NCHW, name=f"{node.name}_nchw")
            model.graph.node.insert(index, back)
            changed = True
        return model, changed


class TransposeBeforeInputQuant:
    """The model input quantized once and read by several convolutions: qonnx leaves one Transpose
    to channels last per reader after the quantizer; one Transpose before it (per tensor, the
    quantizer is indifferent to the layout) is the host's transpose of the input."""

    lowers = ()

    def apply(self, model):
        inputs = {i.name for i in model.graph.input}
        for node in list(model.graph.node):
            if node.op_type not in QUANT_OPS or node.input[0] not in inputs or _per_channel(model, node):
                continue
            readers = consumers(model, node.output[0])
            if len(readers) < 2 or not all(_is_transpose(r, TO_NHWC) for r in readers):
                continue
            shape = model.get_tensor_shape(node.input[0])
            moved = helper.make_node("Transpose", [node.input[0]], [f"{node.input[0]}_nhwc"], perm=TO_NHWC)
            moved.name = f"{readers[0].name}_input"
            model.graph.node.insert(list(model.graph.node).index(node), moved)
            model.set_tensor_shape(moved.output[0], _nhwc(shape))
            node.input[0] = moved.output[0]
            model.set_tensor_shape(node.output[0], _nhwc(shape))
            for r in readers:
                model.graph.node.remove(r)
                rewire(model, r.output[0], node.output[0])
            return model, True
        return model, False


class CancelTransposePair:
    """A Transpose to NCHW read only by one Transpose back to NHWC: both go."""

    lowers = ()

    def apply(self, model):
        for node in list(model.graph.node):
            if not _is_transpose(node, TO_NCHW):
                continue
            readers = consumers(model, node.output[0])
            if len(readers) != 1 or not _is_transpose(readers[0], TO_NHWC):
                continue
            if node.output[0] in _graph_outputs(model):
                continue
            model.graph.node.remove(node)
            model.graph.node.remove(readers[0])
            rewire(model, readers[0].output[0], node.input[0])
            return model, True
        return model, False


def _graph_outputs(model) -> set[str]:
    return {o.name for o in model.graph.output}


def _per_tensor_chain(model, tensor: str) -> list[str] | None:
    """The tensors from ``tensor`` through per-tensor elementwise ops to a flatten, or None when the
    path forks or meets anything else."""
    chain = [tensor]
    while True:
        readers = consumers(model, chain[-1])
        if len(readers) != 1:
            return None
        (reader,) = readers
        if reader.op_type in ("Flatten", "Reshape"):
            return chain
        if reader.op_type not in ELEMENTWISE or (reader.op_type in QUANT_OPS and _per_channel(model, reader)):
            return None
        chain.append(reader.output[0])


def _per_channel(model, node) -> bool:
    scale = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    return scale is not None and scale.size > 1


class ReduceMeanToGlobalPool:
    """Every mean over an NCHW view's H and W axes (kept) is a channels-last global average pool."""

    lowers = ("ReduceMean",)

    def apply(self, model):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "ReduceMean" or not attr(node, "keepdims", 1):
                continue
            axes = attr(node, "axes", None)
            if axes is None and len(node.input) > 1:
                const = model.get_initializer(node.input[1])
                axes = None if const is None else const.tolist()
            first = model.find_producer(node.input[0])
            if sorted(a % 4 for a in (axes or [])) != [2, 3] or not _is_transpose(first, TO_NCHW):
                continue
            if len(consumers(model, first.output[0])) != 1:
                continue
            nodes = model.graph.node
            index = list(nodes).index(first)  # in its place: the graph stays in topological order
            new = helper.make_node(
                "GlobalAveragePool", [first.input[0]], list(node.output), name=node.name, domain=CHANNELS_LAST
            )
            new.metadata_props.extend(node.metadata_props)  # the user's name of the node
            nodes.remove(node)
            nodes.remove(first)
            nodes.insert(index, new)
            changed = True
        return model, changed


class AbsorbTransposeIntoFlatten:
    """Every NCHW flatten before a dense layer: the dense weight's rows are put in channels-last
    order instead, and the pixels flow in as they are (qonnx does this for Flatten, not Reshape)."""

    lowers = ()

    def apply(self, model):
        changed = False
        for node in list(model.graph.node):
            if not _is_transpose(node, TO_NCHW):
                continue
            readers = consumers(model, node.output[0])
            nhwc = model.get_tensor_shape(node.input[0])
            if len(readers) != 1 or readers[0].op_type not in ("Flatten", "Reshape") or nhwc is None:
                continue
            flat = readers[0]
            gemms = consumers(model, flat.output[0])
            if len(gemms) != 1 or gemms[0].op_type != "Gemm" or attr(gemms[0], "transB", 0):
                continue
            if not _permute_rows(model, gemms[0].input[1], tuple(nhwc[1:])):
                continue
            flat.input[0] = node.input[0]
            model.graph.node.remove(node)
            changed = True
        return model, changed


def _permute_rows(model, name: str, hwc: tuple[int, ...]) -> bool:
    """Reorder a (C*H*W, N) weight's rows from NCHW to NHWC flatten order, at its float source."""
    producer = model.find_producer(name)
    source = name if producer is None else producer.input[0]
    if producer is not None and (producer.op_type not in QUANT_OPS or len(consumers(model, name)) != 1):
        return False
    value = model.get_initializer(source)
    scale = None if producer is None else model.get_initializer(producer.input[1])
    if value is None or len(consumers(model, source)) != 1 or value.ndim != 2 or len(hwc) != 3:
        return False
    if scale is not None and scale.ndim == 2 and scale.shape[0] != 1:
        return False  # a scale per row would have to move too
    h, w, c = hwc
    if value.shape[0] != h * w * c:
        return False
    model.set_initializer(source, value.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(value.shape))
    return True
